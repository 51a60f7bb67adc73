"""Retrieval with the real bundled model: the harness end to end, fusion and abstention."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest

from retriever.evaluate import load_reqa, map_store, run_reqa
from retriever.retriever import Retriever
from store.db import Store
from store.ingest import Ingestor
from store.sources.files import load_file
from tests.conftest import SAMPLE_ARTICLE, need_shared
from tests.engines import BACKENDS, OpenStore, index_source
from tests.retriever.test_evaluate import write_reqa

pytestmark = pytest.mark.slow


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Where the indexes are searched: locally, or in Qdrant's engine (in process)."""
    return str(request.param)


def _store(tmp_path: Path, embedder) -> Store:  # type: ignore[no-untyped-def]
    return Store(tmp_path / "qabot.sqlite3", model=embedder.name, dim=embedder.dim)


def test_reqa_harness_end_to_end(
    tmp_path: Path, real_embedder, backend: str, open_store: OpenStore
) -> None:  # type: ignore[no-untyped-def]
    """On each search backend and each store of truth (SQLite, PostgreSQL)."""
    data = load_reqa(write_reqa(tmp_path / "reqa"))
    store = open_store(model=real_embedder.name, dim=real_embedder.dim)
    Ingestor(store, real_embedder).ingest(a.raw() for a in data.articles)
    spans, report = map_store(store, data)
    assert report.articles == 2 and report.extra_spans == 1
    retriever = Retriever(
        store, real_embedder, tmp_path / "index", search=index_source(backend, tmp_path)
    )
    result = run_reqa(retriever, data.questions, spans, latency_sample=3)
    assert result["questions"] == 3
    assert result["r1"] == 1.0 and result["mrr"] == 1.0
    assert result["abstained"] == 0.0
    assert result["p50_ms"] > 0
    bm25 = run_reqa(retriever, data.questions, spans, mode="bm25", latency_sample=1)
    assert bm25["r10"] == 1.0


@pytest.fixture
def news(tmp_path: Path, real_embedder, backend: str, open_store: OpenStore) -> Retriever:  # type: ignore[no-untyped-def]
    """A store holding one real news article (pasted twice, with furniture), on each store
    of truth."""
    store = open_store(model=real_embedder.name, dim=real_embedder.dim)
    Ingestor(store, real_embedder).ingest(load_file(need_shared(SAMPLE_ARTICLE)))
    return Retriever(
        store, real_embedder, tmp_path / "index", search=index_source(backend, tmp_path)
    )


def test_answerable_question_is_answered_from_the_right_sentence(news: Retriever) -> None:
    answer = news.ask("Where did the Russian elite units land?")
    assert not answer.abstained
    assert "Sidi Barrani" in answer.answers[0].text


@pytest.mark.parametrize(
    "question",
    [
        "What is the capital of Australia?",
        "Who wrote Pride and Prejudice?",
        "How many moons does Jupiter have?",
    ],
)
def test_unanswerable_question_abstains(news: Retriever, question: str) -> None:
    answer = news.ask(question)
    assert answer.abstained and answer.answers == ()
    ranked = news.rank([question])[0]
    assert news.abstains(ranked) and ranked.positions.size > 0  # ranked, yet not answered


def test_quotes_come_from_the_stored_text_with_the_sentence_they_lean_on(
    tmp_path: Path, real_embedder, backend: str, open_store: OpenStore
) -> None:  # type: ignore[no-untyped-def]
    from store.models import RawArticle

    store = open_store(model=real_embedder.name, dim=real_embedder.dim)
    text = (
        "The Harwick footbridge reopened on Monday after two years of repairs.\n\n"
        "Maria Okafor was the chief engineer of the city. "
        "She led the repair crew of forty welders through two winters."
    )
    Ingestor(store, real_embedder).ingest(
        [RawArticle(key="harwick", text=text, title="Harwick footbridge reopens")]
    )
    for _ in range(2):  # indexes built from SQLite, then the saved ones loaded
        retriever = Retriever(
            store, real_embedder, tmp_path / "index", search=index_source(backend, tmp_path)
        )
        answer = retriever.ask("Who led the repair crew?", k=2)
        first = answer.answers[0]
        assert first.text.startswith("She led the repair crew")
        stored = store.execute("SELECT text FROM articles").fetchone()[0]
        assert stored[first.start : first.end] == first.text
        assert first.context_before == "Maria Okafor was the chief engineer of the city."
        others = [a for a in answer.answers[1:] if a.text.startswith("The Harwick")]
        # The first sentence of an article has nothing before it to lean on.
        assert all(a.context_before is None for a in others)


def test_a_restarted_bot_answers_from_the_saved_indexes_at_once_and_alike_once_read_in(
    tmp_path: Path, real_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Saved indexes are memory-mapped on load and read into memory behind the first
    questions; the answers are the same before, during and after."""
    import store.indexes.vectors as vectors_module
    from store.indexes.saved import make_resident

    # The sample article's ~40 sentences behind IVF indexes, as a big store's are.
    monkeypatch.setattr(vectors_module, "APPROXIMATE_ABOVE", 8)
    store = _store(tmp_path, real_embedder)
    Ingestor(store, real_embedder).ingest(load_file(need_shared(SAMPLE_ARTICLE)))
    questions = ["Where did the Russian elite units land?", "Who wrote Pride and Prejudice?"]
    built = Retriever(store, real_embedder, tmp_path / "index")
    expected = [built.ask(q).model_dump(exclude={"timings"}) for q in questions]
    assert built.indexes().sentences.dense_info["kind"] == "ivf"
    assert built.indexes().mapped_from is None  # built here: in memory already

    restarted = Retriever(store, real_embedder, tmp_path / "index")
    indexes = restarted.indexes()
    assert indexes.mapped_from is not None and indexes.sentences.dense_info["kind"] == "ivf"
    assert _mapped(indexes.sentences.bm25.weights.indices)
    assert indexes.article_sources is not None  # citing reads no SQLite
    assert [restarted.ask(q).model_dump(exclude={"timings"}) for q in questions] == expected
    assert make_resident(indexes) > 0 and indexes.mapped_from is None
    assert not _mapped(indexes.sentences.bm25.weights.indices)
    assert [restarted.ask(q).model_dump(exclude={"timings"}) for q in questions] == expected

    bot = Retriever(store, real_embedder, tmp_path / "index")
    bot.keep_resident()
    during = [bot.ask(q).model_dump(exclude={"timings"}) for q in questions]
    assert bot.wait_resident(60) and bot.indexes().mapped_from is None
    assert during == expected
    assert expected[0]["answers"] and "Sidi Barrani" in expected[0]["answers"][0]["text"]


def _mapped(array: np.ndarray) -> bool:
    """Whether the array's memory is a file mapping."""
    base = array
    while base is not None:
        if isinstance(base, np.memmap | mmap.mmap):
            return True
        base = getattr(base, "base", None)
    return False


def test_a_store_made_before_token_vectors_still_answers_and_the_next_ingest_adds_them(
    tmp_path: Path, real_embedder, backend: str, open_store: OpenStore
) -> None:  # type: ignore[no-untyped-def]
    store = open_store(model=real_embedder.name, dim=real_embedder.dim)
    Ingestor(store, real_embedder).ingest(load_file(need_shared(SAMPLE_ARTICLE)))
    with store.transaction() as db:  # what a store from before 2026-12-02 holds
        db.execute("DELETE FROM token_vectors")
        db.execute("DELETE FROM token_projection")
    retriever = Retriever(
        store, real_embedder, tmp_path / "index", search=index_source(backend, tmp_path)
    )
    assert retriever.indexes().sentences.tokens is None
    answer = retriever.ask("Where did the Russian elite units land?")
    assert "Sidi Barrani" in answer.answers[0].text
    from store.models import RawArticle

    Ingestor(store, real_embedder).ingest(
        [
            RawArticle(
                key="orchard",
                title="Fruit trees for the old rail yard",
                text="Forty volunteers planted 120 fruit trees on Saturday on the rail yard.",
                pre_cleaned=True,
            )
        ]
    )
    tokens = retriever.indexes().sentences.tokens
    assert tokens is not None and store.stats()["token_vectors"] == 1
    # The older sentences rank as before; the new one is found by its words.
    assert (
        "Sidi Barrani" in retriever.ask("Where did the Russian elite units land?").answers[0].text
    )
    assert "120 fruit trees" in retriever.ask("How many fruit trees were planted?").answers[0].text
