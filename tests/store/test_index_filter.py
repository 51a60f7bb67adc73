"""Dense search limited to a collection, through the real engines: FAISS's IVF index, and
Qdrant's (in process) with the collection as its tenant key."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from store.indexes.bm25 import BM25
from store.indexes.build import UnitIndex
from store.indexes.seams import Allowed, VectorIndex
from store.indexes.vectors import EXACT_FILTER_ROWS, build_dense, exact_top
from tests.engines import BACKENDS, qdrant_units

ARTICLES = 250


@dataclass
class Clustered:
    """25,000 clustered vectors in 250 'articles', each its own collection, searched on
    one backend."""

    index: VectorIndex
    vectors: np.ndarray
    article: np.ndarray

    def allowed(self, ok: np.ndarray) -> Allowed:
        names = sorted({f"a{a}" for a in self.article[ok].tolist()})
        return Allowed(tuple(names), ok)


@pytest.fixture(scope="module", params=BACKENDS)
def clustered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Clustered:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((400, 32)).astype(np.float32)
    vectors = centres[rng.integers(0, 400, 25_000)] + 0.35 * rng.standard_normal(
        (25_000, 32)
    ).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    n = len(vectors)
    article = rng.integers(0, ARTICLES, n).astype(np.int32)
    if request.param != "local":
        collections = [f"a{a}" for a in range(ARTICLES)]
        dense, _ = qdrant_units(
            request.param, tmp_path_factory.mktemp("qdrant"), vectors, article, collections
        )
        return Clustered(dense, vectors, article)
    # Behind an IVF index tuned to its target, as a big local store is.
    index, info = build_dense(vectors, "ivf")
    assert info["kind"] == "ivf"
    unit = UnitIndex(
        rowids=np.arange(n),
        article=article,
        position=np.zeros(n, dtype=np.int32),
        vectors=vectors,
        bm25=BM25.build(["a"]),
        faiss_index=index,
    )
    return Clustered(unit, vectors, article)


def _recall(clustered: Clustered, ok: np.ndarray, queries: np.ndarray, depth: int) -> float:
    """Share of the exact top 10 among the allowed rows that the filtered search returns
    (its `depth` best, rescored exactly, as the retriever does)."""
    allowed = np.flatnonzero(ok)
    vectors = clustered.vectors
    truth = allowed[exact_top(vectors[allowed], queries, 10)]
    hits = []
    for q, t in zip(queries, truth, strict=True):
        found = clustered.index.nearest(q, depth, clustered.allowed(ok))
        assert ok[found].all()  # nothing from another collection
        best = found[np.argsort(-(vectors[found] @ q))][:10]
        hits.append(len(set(best.tolist()) & set(t.tolist())) / 10)
    return float(np.mean(hits))


@pytest.mark.parametrize("articles", [2, 8, 25, 75, 250])  # ~1%, 3%, 10%, 30%, 100%
def test_a_collection_of_any_size_is_searched_at_the_recall_target(
    clustered: Clustered, articles: int
) -> None:
    rng = np.random.default_rng(articles)
    ok = clustered.article < articles
    queries = clustered.vectors[rng.choice(len(ok), 40, replace=False)]
    queries = queries + 0.3 * rng.standard_normal(queries.shape).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    recall = _recall(clustered, ok, queries, 30)
    if ok.sum() <= EXACT_FILTER_ROWS:
        assert recall == 1.0  # small collections are searched exactly
    else:
        assert recall >= 0.95


def test_an_empty_or_tiny_collection_returns_what_it_has(clustered: Clustered) -> None:
    if not isinstance(clustered.index, UnitIndex):
        pytest.skip("rows picked across collections are a mask only a local index takes")
    q = clustered.vectors[0]
    none = np.zeros(len(clustered.vectors), dtype=bool)
    assert clustered.index.nearest(q, 10, clustered.allowed(none)).size == 0
    three = none.copy()
    three[[5, 900, 20_000]] = True
    assert sorted(clustered.index.nearest(q, 10, clustered.allowed(three)).tolist()) == [
        5,
        900,
        20_000,
    ]


def test_an_empty_or_one_article_collection_returns_what_it_has(clustered: Clustered) -> None:
    q = clustered.vectors[0]
    none = np.zeros(len(clustered.vectors), dtype=bool)
    assert clustered.index.nearest(q, 10, clustered.allowed(none)).size == 0
    tiny = none.copy()
    tiny[np.flatnonzero(clustered.article == 7)] = True  # one collection: its rows, all
    found = clustered.index.nearest(q, 10_000, clustered.allowed(tiny))
    assert sorted(found.tolist()) == np.flatnonzero(tiny).tolist()


def test_scores_of_given_rows_are_their_exact_inner_products(clustered: Clustered) -> None:
    q = clustered.vectors[3]
    rows = np.asarray([5, 900, 20_000, 24_999])
    expected = clustered.vectors[rows] @ q
    assert np.allclose(clustered.index.scores(q, rows), expected, atol=2e-3)
