"""A small real store for the Discord tests: the project's sample articles, real MiniLM."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import discord
import pytest
import simcord

from bot.discord_app import QABot, create_bot
from bot.settings import Settings
from retriever.retriever import Retriever
from store.db import Store
from store.ingest import Ingestor
from store.models import RawArticle
from store.sources.files import find_files, load_file
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


@pytest.fixture
def data_dir(discord_store: Path, tmp_path: Path) -> Path:
    """A private copy of the shared test store, so writes in one test stay there."""
    folder = tmp_path / "data"
    shutil.copytree(discord_store, folder)
    return folder


@pytest.fixture
def make_bot(data_dir: Path, real_embedder):  # type: ignore[no-untyped-def]
    bots: list[QABot] = []

    def make(**settings: object) -> QABot:
        bot = create_bot(
            open_retriever(data_dir, real_embedder), bot_settings(data_dir, **settings)
        )
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        bot.service.close()


class World:
    """A guild with a #general channel, an admin and a member, around a running bot."""

    def __init__(self, env: simcord.Env) -> None:
        self.env = env
        self.guild = env.create_guild("Harbor readers", id=GUILD_ID)
        self.channel = self.guild.create_text_channel("general")
        admins = self.guild.create_role(
            "Admins", permissions=discord.Permissions(manage_guild=True)
        )
        self.admin = self.guild.add_member(env.create_user("ada"), roles=[admins])
        self.member = self.guild.add_member(env.create_user("ben"))

    def stored(self, message: Any) -> Any:
        """simcord's record of a message the bot sent (who it pinged, and so on)."""
        return self.env.backend.messages[message.channel_id][message.id]


@pytest.fixture
def simcord_bot(make_bot, request: pytest.FixtureRequest) -> QABot:  # type: ignore[no-untyped-def]
    """The bot simcord's `simcord_env` runs; `@pytest.mark.bot_settings(...)` adjusts it."""
    marker = request.node.get_closest_marker("bot_settings")
    return make_bot(**(marker.kwargs if marker else {}))


@pytest.fixture
def world(simcord_env: simcord.Env) -> World:
    return World(simcord_env)


def reply_of(result: Any) -> Any:
    """The answer to a deferred command: the message that replaced "thinking…"."""
    return result.followups[-1] if result.followups else result.response
