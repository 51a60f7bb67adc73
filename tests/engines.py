"""The search backends the retriever and index tests run on, each a real engine: the local
indexes (FAISS + qabot's BM25), Qdrant's engine in this process (qdrant-edge-py), and
qdrant-client's local mode (its request path; a pure-Python imitation of the engine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from store.indexes.bm25 import tokenize
from store.indexes.qdrant import (
    ClientTransport,
    EdgeTransport,
    Point,
    PointKeys,
    QdrantIndexes,
    QdrantVectors,
    QdrantWords,
    point_ids,
    term_weights,
)
from store.indexes.saved import LocalIndexes
from store.indexes.source import IndexSource

# What the retriever suite runs on; the client's local mode only where its speed allows.
BACKENDS = ["local", "qdrant-edge"]
ALL_BACKENDS = [*BACKENDS, "qdrant-client"]


def index_source(kind: str, folder: Path) -> IndexSource:
    """A fresh index source of this kind, keeping its files (if any) under `folder`."""
    if kind == "local":
        return LocalIndexes()
    if kind == "qdrant-edge":
        return QdrantIndexes(EdgeTransport.at(folder / "qdrant-edge"))
    if kind == "qdrant-client":
        from qdrant_client import QdrantClient

        return QdrantIndexes(ClientTransport(QdrantClient(":memory:"), where=":memory:"))
    raise ValueError(kind)


def qdrant_units(
    kind: str,
    folder: Path,
    vectors: np.ndarray,
    article: np.ndarray,
    collections: list[str],
    docs: list[str] | None = None,
) -> tuple[QdrantVectors, QdrantWords]:
    """One unit's points written straight into a Qdrant of this kind, for the index tests:
    `vectors` by position, `article[i]` (a position in `collections`, one article per
    collection) and, for the words, `docs` (weighted with their own average length)."""
    source = index_source(kind, folder)
    assert isinstance(source, QdrantIndexes)
    transport = source.transport
    transport.create(vectors.shape[1])
    article = np.asarray(article, dtype=np.int64)
    index = np.zeros(len(article), dtype=np.int64)
    seen: dict[int, int] = {}
    for pos, a in enumerate(article.tolist()):  # each unit's index in its article
        index[pos] = seen.get(a, 0)
        seen[a] = index[pos] + 1
    keys = np.arange(1, len(collections) + 1, dtype=np.uint64)
    ids = point_ids(keys[article], index).tolist()
    words = [tokenize(d) for d in docs] if docs else [[] for _ in ids]
    avgdl = float(np.mean([len(w) for w in words])) if docs else 1.0
    points = [
        Point(
            ids[pos],
            vectors[pos].tolist(),
            term_weights(words[pos], avgdl),
            {"tenant": collections[a], "article": f"{int(keys[a]):016x}"},
        )
        for pos, a in enumerate(article.tolist())
    ]
    for start in range(0, len(points), 512):
        transport.upsert("sentences", points[start : start + 512])
    transport.settle()
    point_keys = PointKeys(keys, article, index)
    return (
        QdrantVectors(transport, "sentences", point_keys, vectors.shape[1]),
        QdrantWords(transport, "sentences", point_keys, len(points)),
    )
