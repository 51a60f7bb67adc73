"""The search backends the retriever and index tests run on, each a real engine: the local
indexes (FAISS + qabot's BM25), Qdrant's engine in this process (qdrant-edge-py), and
qdrant-client's local mode (its request path; a pure-Python imitation of the engine)."""

from __future__ import annotations

from pathlib import Path

from store.indexes.qdrant import ClientTransport, EdgeTransport, QdrantIndexes
from store.indexes.saved import LocalIndexes
from store.indexes.seams import IndexSource

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
