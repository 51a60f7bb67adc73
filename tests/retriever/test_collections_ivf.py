"""Questions limited to a collection on a store large enough for IVF indexes (issue 18).

A store past APPROXIMATE_ABOVE sentences searches them through an IVF index; a Discord bot
asks each server's own collection. Built here for real (ingest, index build, FAISS), with
the deterministic embedder: ~25 s, so marked slow.
"""

from __future__ import annotations

import pytest

from retriever.retriever import Retriever
from store.db import Store
from store.indexes.vectors import APPROXIMATE_ABOVE
from store.ingest import Ingestor
from store.models import RawArticle
from tests.doubles import HashingEmbedder
from tests.engines import BACKENDS, index_source

pytestmark = pytest.mark.slow

ARTICLES_PER_GUILD = 50
PARAGRAPHS, SENTENCES = 30, 7  # 210 sentences an article, 21,000 in the store


def _article(guild: str, a: int) -> RawArticle:
    paragraphs = [
        " ".join(
            f"Depot {a}p{p}s{s} of {guild} counted {a * 7 + s} crates of"
            f" item{(a * 31 + p * 7 + s) % 997} near gate{(p * 13 + s) % 211}."
            for s in range(SENTENCES)
        )
        for p in range(PARAGRAPHS)
    ]
    return RawArticle(
        key=f"https://example.org/{guild}/{a}",
        title=f"Depot log {guild} {a}",
        text="\n\n".join(paragraphs),
        pre_cleaned=True,
    )


@pytest.fixture(scope="module", params=BACKENDS)
def two_guilds(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Retriever:
    folder = tmp_path_factory.mktemp("guilds")
    embedder = HashingEmbedder()
    store = Store(folder / "qabot.sqlite3", model=embedder.name, dim=embedder.dim)
    ingest = Ingestor(store, embedder)
    for guild in ("guild-1", "guild-2"):
        ingest.ingest([_article(guild, a) for a in range(ARTICLES_PER_GUILD)], collection=guild)
    return Retriever(store, embedder, folder / "index", search=index_source(request.param, folder))


def test_a_question_limited_to_a_collection_is_answered_from_it_behind_an_ivf_index(
    two_guilds: Retriever,
) -> None:
    indexes = two_guilds.indexes()
    assert len(indexes.sentences.rowids) > APPROXIMATE_ABOVE
    # Behind IVF here; in Qdrant, behind its HNSW graphs (one per tenant too).
    local = two_guilds.snapshots.source.name == "local"
    assert indexes.sentences.dense_info["kind"] == ("ivf" if local else "qdrant")
    # The same words stand in both guilds' articles; each guild must get its own depot.
    question = "How many crates did depot 12p3s4 count?"
    for guild, other in (("guild-2", "guild-1"), ("guild-1", "guild-2")):
        # The hashing embedder's confidences are not on the model's scale: no abstention line.
        answer = two_guilds.ask(question, collections=[guild], abstain_below=-1e9)
        assert not answer.abstained, guild
        assert answer.answers[0].text.startswith(f"Depot 12p3s4 of {guild} counted"), guild
        quoted = [a.article.title for a in answer.answers]
        assert all(title.startswith(f"Depot log {guild} ") for title in quoted), quoted
        assert all(other not in a.text for a in answer.answers)
    # Every collection at once still searches the whole index.
    assert len(two_guilds.ask(question, k=2, abstain_below=-1e9).answers) == 2
