"""A small real store for the Discord tests: the project's sample articles, real MiniLM."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings
from retriever.retriever import Retriever
from store.db import Store
from store.ingest import Ingestor
from store.loaders import find_files, load_file
from store.models import RawArticle
from tests.conftest import PROJECT_SAMPLES

GUILD_ID = 424242
COLLECTION = f"guild-{GUILD_ID}"

# Three long sentences about the same report: together far over a Discord message.
LONG_TEXT = " ".join(
    f"The ferry terminal report names contractor group {part}: "
    + ", ".join(f"the firm of Partner {part}{n} from district {n % 7}" for n in range(1, 22))
    + "."
    for part in "ABC"
)


@pytest.fixture(scope="session")
def discord_store(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Path:  # type: ignore[no-untyped-def]
    """A store folder holding the sample articles and a report with one huge sentence."""
    folder = tmp_path_factory.mktemp("discord-store")
    store = Store(folder / "qabot.sqlite3", model=real_embedder.name, dim=real_embedder.dim)
    items = [item for f in find_files(PROJECT_SAMPLES) for item in load_file(f)]  # type: ignore[arg-type]
    items.append(
        RawArticle(
            key="https://example.org/ferry-report",
            url="https://example.org/ferry-report",
            title="Ferry terminal report published",
            publisher="Harbor Gazette",
            published="2025-10-03",
            text=LONG_TEXT,
            pre_cleaned=True,
        )
    )
    report = Ingestor(store, real_embedder).ingest(items, collection=COLLECTION)
    assert report.added and not report.skipped
    store.close()
    return folder


def bot_settings(folder: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "QABOT_DATA_DIR": str(folder),
        "QABOT_FEED_SYNC_MINUTES": 0,
        "QABOT_COOLDOWN_QUESTIONS": 5,
        "QABOT_COOLDOWN_SECONDS": 60,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def open_retriever(folder: Path, embedder) -> Retriever:  # type: ignore[no-untyped-def]
    store = Store(folder / "qabot.sqlite3", model=embedder.name, dim=embedder.dim)
    return Retriever(store, embedder, folder / "index")
