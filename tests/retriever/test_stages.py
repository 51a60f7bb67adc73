"""Each stage of the question's road on its own, over a tiny store embedded by a
deterministic bag-of-words embedder (no model load): seconds, not minutes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retriever.answer import abstains, choose
from retriever.candidates import gather
from retriever.errors import BadQuestionError
from retriever.query import MAX_QUESTION_CHARS, check_question, encode_queries
from retriever.rerank import MaxSimReranker
from retriever.retriever import Retriever
from retriever.scoring import Ranked, score_hybrid
from retriever.snapshot import Snapshot, Snapshots
from retriever.weights import Weights
from store.indexes.bm25 import tokenize
from store.ingest import Ingestor
from store.models import RawArticle
from tests.doubles import HashingEmbedder
from tests.engines import ALL_BACKENDS, OpenStore, index_source

BRIDGE = (
    "The Harwick footbridge reopened on Monday after a two-year repair.\n\n"
    "The repair was led by the county engineer, Maria Olsen. "
    "She replaced every cable of the span.\n\n"
    "The orchard on Mill Lane planted forty apple trees in spring."
)
FERRY = (
    "The island ferry resumed sailing in April.\n\n"
    "The repair was led by the county engineer, Maria Olsen. "
    "Tickets cost four pounds each way."
)


@pytest.fixture(params=ALL_BACKENDS)
def snapshots(tmp_path: Path, request: pytest.FixtureRequest, open_store: OpenStore) -> Snapshots:
    """The two-article store, on each store of truth, its indexes searched on each backend."""
    embedder = HashingEmbedder()
    store = open_store(model=embedder.name, dim=embedder.dim)
    ingest = Ingestor(store, embedder)
    ingest.ingest(
        [RawArticle(key="bridge", title="Harwick footbridge", text=BRIDGE, pre_cleaned=True)],
        collection="town",
    )
    ingest.ingest(
        [RawArticle(key="ferry", title="Island ferry", text=FERRY, pre_cleaned=True)],
        collection="island",
    )
    return Snapshots(store, embedder, tmp_path / "index", index_source(request.param, tmp_path))


def _texts(snapshot: Snapshot, positions: np.ndarray) -> list[str]:
    rows = snapshot.sentence_rows([int(p) for p in positions])
    return [rows[int(p)].text for p in positions]


# -- query ------------------------------------------------------------------------------


def test_a_question_is_checked_and_tidied() -> None:
    assert check_question("  Who   led\nthe repair? ") == "Who led the repair?"
    with pytest.raises(BadQuestionError, match="empty"):
        check_question(" \n ")
    with pytest.raises(BadQuestionError, match=str(MAX_QUESTION_CHARS)):
        check_question("why " * 400)


def test_query_carries_terms_for_both_indexes_and_what_the_store_never_saw(
    snapshots: Snapshots,
) -> None:
    idx = snapshots.current().indexes
    known, unknown = encode_queries(
        idx,
        snapshots.embedder,
        ["Who led the cable repair?", "How many moons has Jupiter?"],
        "hybrid",
    )
    assert known.vector is not None and known.tokens is not None
    assert known.sentence_terms == idx.sentences.words.query_terms(known.text)
    assert known.passage_terms == idx.passages.words.query_terms(known.text)
    assert len(known.sentence_terms) == len(tokenize(known.text))  # every word is known
    assert known.unknown_share == 0.0 and unknown.unknown_share == 1.0
    assert known.sentence_bm25_max > 0
    (lexical,) = encode_queries(idx, snapshots.embedder, ["cable"], "bm25")
    assert lexical.vector is None and lexical.tokens is None


# -- candidates ---------------------------------------------------------------------------


def test_bm25_candidates_share_a_word_with_the_question(snapshots: Snapshots) -> None:
    snapshot = snapshots.current()
    (query,) = encode_queries(snapshot.indexes, snapshots.embedder, ["apple trees"], "bm25")
    cands = gather(snapshot, query, "bm25", None, sentence_depth=10, passage_depth=5)
    assert _texts(snapshot, cands.positions) == [
        "The orchard on Mill Lane planted forty apple trees in spring."
    ]
    assert cands.sentence_dense is None and cands.passage_bm25 is None


def test_candidates_stay_inside_the_asked_collections(snapshots: Snapshots) -> None:
    snapshot = snapshots.current()
    (query,) = encode_queries(
        snapshot.indexes, snapshots.embedder, ["Who led the repair?"], "hybrid"
    )
    everywhere = gather(snapshot, query, "hybrid", None, sentence_depth=10, passage_depth=5)
    island = gather(snapshot, query, "hybrid", ["island"], sentence_depth=10, passage_depth=5)
    articles = snapshot.indexes.sentences.article
    assert {snapshot.indexes.article_ids[a] for a in articles[everywhere.positions]} == set(
        snapshot.indexes.article_ids
    )
    island_articles = {int(a) for a in articles[island.positions]}
    assert len(island_articles) == 1
    (only,) = island_articles
    assert snapshot.indexes.collections[snapshot.indexes.article_collection[only]] == "island"


def test_hybrid_candidates_bring_every_sentence_of_a_found_passage(snapshots: Snapshots) -> None:
    snapshot = snapshots.current()
    (query,) = encode_queries(snapshot.indexes, snapshots.embedder, ["cable span"], "hybrid")
    cands = gather(snapshot, query, "hybrid", ["town"], sentence_depth=1, passage_depth=1)
    texts = _texts(snapshot, cands.positions)
    # The passage holding "cable" also brings its first sentence, which shares no word.
    assert "The repair was led by the county engineer, Maria Olsen." in texts
    assert cands.passage_dense is not None and len(cands.passage_dense) == len(cands)


# -- scoring and rerank -------------------------------------------------------------------


def test_scoring_puts_the_sentence_sharing_the_question_words_first(snapshots: Snapshots) -> None:
    snapshot = snapshots.current()
    (query,) = encode_queries(
        snapshot.indexes, snapshots.embedder, ["When did the ferry resume sailing?"], "hybrid"
    )
    cands = gather(snapshot, query, "hybrid", None, sentence_depth=10, passage_depth=5)
    ranked = score_hybrid(cands, query, snapshot.population, Weights()).ranked()
    assert _texts(snapshot, ranked.positions[:1]) == ["The island ferry resumed sailing in April."]
    assert list(ranked.scores) == sorted(ranked.scores, reverse=True)


def test_maxsim_rerank_adds_to_the_best_and_says_when_it_cannot(snapshots: Snapshots) -> None:
    snapshot = snapshots.current()
    idx = snapshot.indexes
    (query,) = encode_queries(idx, snapshots.embedder, ["Who replaced every cable?"], "hybrid")
    cands = gather(snapshot, query, "hybrid", None, sentence_depth=10, passage_depth=5)
    scored = score_hybrid(cands, query, snapshot.population, Weights())
    before = scored.score.copy()
    assert MaxSimReranker(Weights(token_depth=3)).rerank(snapshot, query, scored)
    raised = np.flatnonzero(scored.score != before)
    assert 0 < len(raised) <= 3
    best = int(np.argmax(scored.score))
    assert _texts(snapshot, cands.positions[[best]]) == ["She replaced every cable of the span."]
    (plain,) = encode_queries(idx, snapshots.embedder, ["Who replaced every cable?"], "dense")
    assert not MaxSimReranker(Weights()).rerank(snapshot, plain, scored)  # no word pieces


# -- answer ---------------------------------------------------------------------------------


def test_answer_abstains_under_the_line(snapshots: Snapshots) -> None:
    ranked = Ranked(np.array([0, 1]), np.array([2.0, 1.0]), np.array([0.5, 0.4]))
    assert abstains(ranked, 0.6) and not abstains(ranked, 0.45)
    assert abstains(Ranked.empty(), 0.0)
    assert choose(snapshots.current(), ranked, 3, 0.6, 0.8) == []


def test_answer_quotes_a_repeated_fact_once_citing_both_and_adds_leaning_context(
    snapshots: Snapshots,
) -> None:
    snapshot = snapshots.current()
    rows = snapshot.sentence_rows(list(range(len(snapshot.indexes.sentences.rowids))))
    led = [p for p, r in rows.items() if r.text.startswith("The repair was led")]
    she = next(p for p, r in rows.items() if r.text.startswith("She replaced"))
    order = np.array([*led, she])
    ranked = Ranked(order, np.array([3.0, 2.9, 2.0]), np.array([1.0, 0.99, 0.95]))
    first, second = choose(snapshot, ranked, 3, 0.5, 0.8)
    assert first.text == "The repair was led by the county engineer, Maria Olsen."
    assert {first.article.title, *(s.title for s in first.also_in)} == {
        "Harwick footbridge",
        "Island ferry",
    }
    assert second.context_before == "The repair was led by the county engineer, Maria Olsen."
    assert first.context_before is None


# -- snapshot ---------------------------------------------------------------------------------


def test_a_snapshot_lasts_one_generation(snapshots: Snapshots, tmp_path: Path) -> None:
    first = snapshots.current()
    assert snapshots.current() is first
    Ingestor(snapshots.store, snapshots.embedder).ingest(
        [
            RawArticle(
                key="new", title="Market", text="The market opens on Fridays.", pre_cleaned=True
            )
        ]
    )
    second = snapshots.current()
    assert second is not first and second.generation > first.generation
    assert "Market" in {s.title for s in second.sources(set(second.indexes.article_ids)).values()}


def test_retriever_wires_the_stages_and_times_them(snapshots: Snapshots, tmp_path: Path) -> None:
    retriever = Retriever(
        snapshots.store,
        snapshots.embedder,
        tmp_path / "index",
        weights=Weights(abstain_below=0.0),
        search=snapshots.source,
    )
    answer = retriever.ask("Who replaced every cable of the span?", k=1)
    assert answer.answers[0].text == "She replaced every cable of the span."
    assert set(answer.timings) == {"embed", "search", "select", "total"}
