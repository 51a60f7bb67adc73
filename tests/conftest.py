"""Shared fixtures: the real bundled model (loaded once per session) and paths to shared data."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLE_ARTICLE = SHARED_DATA / "articles" / "debka-russian-units-egypt-libya-border.txt"
PROJECT_SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "articles"


def need_shared(path: Path) -> Path:
    """Skip the test, saying where we looked, when ../shared/data is not beside the checkout."""
    if not path.exists():
        pytest.skip(f"shared data not found at {path}; put shared/ beside the checkout")
    return path


@pytest.fixture(scope="session")
def real_embedder():  # type: ignore[no-untyped-def]
    """The bundled all-MiniLM-L6-v2, loaded once: importing torch costs ~10 s."""
    from store.embedding.sentence_transformer import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


# The store backends' fixtures (tests/engines.py), for every test module.
from tests.engines import open_store, postgres_server, postgres_url, store_kind  # noqa: E402, F401
