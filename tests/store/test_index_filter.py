"""Dense search limited to a collection behind an IVF index, through the real FAISS index."""

from __future__ import annotations

import numpy as np
import pytest

from store.indexes.bm25 import BM25
from store.indexes.build import UnitIndex
from store.indexes.vectors import EXACT_FILTER_ROWS, build_dense, exact_top


@pytest.fixture(scope="module")
def clustered() -> UnitIndex:
    """25,000 clustered vectors in 250 'articles', behind an IVF index tuned to its target."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((400, 32)).astype(np.float32)
    vectors = centres[rng.integers(0, 400, 25_000)] + 0.35 * rng.standard_normal(
        (25_000, 32)
    ).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, info = build_dense(vectors, "ivf")
    assert info["kind"] == "ivf"
    n = len(vectors)
    return UnitIndex(
        rowids=np.arange(n),
        article=rng.integers(0, 250, n).astype(np.int32),
        position=np.zeros(n, dtype=np.int32),
        vectors=vectors,
        bm25=BM25.build(["a"]),
        faiss_index=index,
    )


def _recall(unit: UnitIndex, ok: np.ndarray, queries: np.ndarray, depth: int) -> float:
    """Share of the exact top 10 among the allowed rows that the filtered search returns
    (its `depth` best, rescored exactly, as the retriever does)."""
    allowed = np.flatnonzero(ok)
    truth = allowed[exact_top(unit.vectors[allowed], queries, 10)]
    hits = []
    for q, t in zip(queries, truth, strict=True):
        found = unit.nearest(q, depth, ok)
        assert ok[found].all()  # nothing from another collection
        best = found[np.argsort(-(unit.vectors[found] @ q))][:10]
        hits.append(len(set(best.tolist()) & set(t.tolist())) / 10)
    return float(np.mean(hits))


@pytest.mark.parametrize("articles", [2, 8, 25, 75, 250])  # ~1%, 3%, 10%, 30%, 100%
def test_a_collection_of_any_size_is_searched_at_the_recall_target(
    clustered: UnitIndex, articles: int
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


def test_an_empty_or_tiny_collection_returns_what_it_has(clustered: UnitIndex) -> None:
    q = clustered.vectors[0]
    none = np.zeros(len(clustered.rowids), dtype=bool)
    assert clustered.nearest(q, 10, none).size == 0
    three = none.copy()
    three[[5, 900, 20_000]] = True
    assert sorted(clustered.nearest(q, 10, three).tolist()) == [5, 900, 20_000]
