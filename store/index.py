"""Search indexes derived from the SQLite store: FAISS for vectors, BM25 for words.

They are a cache: saved in a folder per store generation, swapped in atomically, and rebuilt
from SQLite whenever they are missing, stale (the store changed since) or unreadable.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from store.bm25 import BM25
from store.db import Store

if TYPE_CHECKING:
    import faiss

log = logging.getLogger(__name__)

Unit = Literal["sentences", "passages"]
INDEX_VERSION = 2
# Below this many vectors an exact (flat) search is fast enough; above it an HNSW graph.
APPROXIMATE_ABOVE = 200_000


@dataclass
class UnitIndex:
    """Sentences or passages, in a fixed order shared by every array here."""

    rowids: np.ndarray  # int64: the row in SQLite
    article: np.ndarray  # int32: position in Indexes.article_ids
    position: np.ndarray  # int32: sentence index in its article (passage index for passages)
    vectors: np.ndarray  # float32 (n, dim), normalised
    bm25: BM25
    faiss_index: faiss.Index | None = None

    def dense(self) -> faiss.Index:
        if self.faiss_index is None:
            self.faiss_index = _build_faiss(self.vectors)
        return self.faiss_index


@dataclass
class Indexes:
    """Everything a question is searched against, for one store generation."""

    generation: int
    article_ids: list[str]
    article_collection: np.ndarray  # int32: position in `collections`
    collections: list[str]
    sentences: UnitIndex
    passages: UnitIndex
    sentence_passage: np.ndarray  # int32: each sentence's passage, as a passage position

    def collection_mask(self, names: list[str] | None) -> np.ndarray | None:
        """Which articles belong to these collections (None: every article)."""
        if names is None or set(self.collections) <= set(names):
            return None
        wanted = [i for i, c in enumerate(self.collections) if c in names]
        return np.isin(self.article_collection, wanted)


def _build_faiss(vectors: np.ndarray) -> faiss.Index:
    import faiss

    n, dim = vectors.shape if vectors.ndim == 2 else (0, 1)
    # Batched searches (evaluation, many users) only use BLAS above this many distance
    # computations; the default (128k) leaves them on a slow scalar path.
    faiss.cvar.distance_compute_blas_threshold = 16
    index: faiss.Index
    if n > APPROXIMATE_ABOVE:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
    else:
        index = faiss.IndexFlatIP(dim)
    if n:
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _unit_from_store(
    store: Store, table: Unit, article_pos: dict[str, int]
) -> tuple[UnitIndex, list[tuple[str, int]]]:
    rowids, article, position, vecs, docs, keys = [], [], [], [], [], []
    for rowid, article_id, _collection, title, text, idx, vec in store.iter_units(table):
        rowids.append(rowid)
        article.append(article_pos[article_id])
        position.append(idx)
        vecs.append(vec)
        # Both carry their article's title (the topic): on ReQA title + sentence beats the
        # sentence alone for BM25; inside one article the title words score every sentence
        # alike, so the sentence that says the thing still outranks its neighbours.
        docs.append(f"{title}\n{text}")
        keys.append((article_id, idx))
    dim = store.dim
    matrix = (
        np.frombuffer(b"".join(vecs), dtype=np.float32).reshape(len(vecs), dim)
        if vecs
        else np.zeros((0, dim), dtype=np.float32)
    )
    unit = UnitIndex(
        rowids=np.asarray(rowids, dtype=np.int64),
        article=np.asarray(article, dtype=np.int32),
        position=np.asarray(position, dtype=np.int32),
        vectors=np.ascontiguousarray(matrix),
        bm25=BM25.build(docs),
    )
    return unit, keys


def build_indexes(store: Store) -> Indexes:
    """Build every derived index from SQLite."""
    started = time.perf_counter()
    generation = store.generation
    rows = store.execute("SELECT id, collection FROM articles ORDER BY id").fetchall()
    article_ids = [r[0] for r in rows]
    article_pos = {a: i for i, a in enumerate(article_ids)}
    collections = sorted({r[1] for r in rows})
    coll_pos = {c: i for i, c in enumerate(collections)}
    sentences, sent_keys = _unit_from_store(store, "sentences", article_pos)
    passages, pass_keys = _unit_from_store(store, "passages", article_pos)
    # Each sentence's passage: passages are runs [first, last] of their article's sentences.
    pass_of: dict[tuple[str, int], int] = {}
    sentence_passage = np.zeros(len(sent_keys), dtype=np.int32)
    if sent_keys:
        spans = store.execute(
            "SELECT article_id, idx, first, last FROM passages ORDER BY article_id, idx"
        ).fetchall()
        by_key = {(a, i): pos for pos, (a, i) in enumerate(pass_keys)}
        for article_id, idx, first, last in spans:
            for s in range(first, last + 1):
                pass_of[(article_id, s)] = by_key[(article_id, idx)]
        for pos, key in enumerate(sent_keys):
            sentence_passage[pos] = pass_of[key]
    indexes = Indexes(
        generation=generation,
        article_ids=article_ids,
        article_collection=np.asarray([coll_pos[r[1]] for r in rows], dtype=np.int32),
        collections=collections,
        sentences=sentences,
        passages=passages,
        sentence_passage=sentence_passage,
    )
    log.info(
        "built indexes for %d sentences and %d passages in %.2fs",
        len(sentences.rowids),
        len(passages.rowids),
        time.perf_counter() - started,
    )
    return indexes


def save_indexes(indexes: Indexes, folder: Path, model: str) -> None:
    """Write the indexes to `folder/gen-N` and point `folder/CURRENT` at it atomically."""
    import faiss

    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=folder))
    try:
        for name in ("sentences", "passages"):
            unit: UnitIndex = getattr(indexes, name)
            np.save(tmp / f"{name}.rowids.npy", unit.rowids)
            np.save(tmp / f"{name}.article.npy", unit.article)
            np.save(tmp / f"{name}.position.npy", unit.position)
            np.save(tmp / f"{name}.vectors.npy", unit.vectors)
            unit.bm25.save(tmp / f"{name}.bm25")
            if len(unit.rowids) > APPROXIMATE_ABOVE:
                faiss.write_index(unit.dense(), str(tmp / f"{name}.faiss"))
        np.save(tmp / "article_collection.npy", indexes.article_collection)
        np.save(tmp / "sentence_passage.npy", indexes.sentence_passage)
        manifest = {
            "version": INDEX_VERSION,
            "generation": indexes.generation,
            "model": model,
            "article_ids": indexes.article_ids,
            "collections": indexes.collections,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        final = folder / f"gen-{indexes.generation}"
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        pointer = folder / "CURRENT.tmp"
        pointer.write_text(final.name, encoding="utf-8")
        os.replace(pointer, folder / "CURRENT")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in folder.glob("gen-*"):
        if old.name != f"gen-{indexes.generation}":
            shutil.rmtree(old, ignore_errors=True)


def load_indexes(folder: Path, generation: int, model: str) -> Indexes | None:
    """The saved indexes for this generation, or None when missing, stale or unreadable."""
    try:
        current = (folder / "CURRENT").read_text(encoding="utf-8").strip()
        gen_dir = folder / current
        manifest = json.loads((gen_dir / "manifest.json").read_text(encoding="utf-8"))
        if (manifest["version"], manifest["generation"], manifest["model"]) != (
            INDEX_VERSION,
            generation,
            model,
        ):
            return None
        units = {}
        for name in ("sentences", "passages"):
            faiss_file = gen_dir / f"{name}.faiss"
            faiss_index = None
            if faiss_file.exists():
                import faiss

                faiss_index = faiss.read_index(str(faiss_file))
            units[name] = UnitIndex(
                rowids=np.load(gen_dir / f"{name}.rowids.npy"),
                article=np.load(gen_dir / f"{name}.article.npy"),
                position=np.load(gen_dir / f"{name}.position.npy"),
                vectors=np.load(gen_dir / f"{name}.vectors.npy", mmap_mode="r"),
                bm25=BM25.load(gen_dir / f"{name}.bm25"),
                faiss_index=faiss_index,
            )
        return Indexes(
            generation=generation,
            article_ids=list(manifest["article_ids"]),
            article_collection=np.load(gen_dir / "article_collection.npy"),
            collections=list(manifest["collections"]),
            sentences=units["sentences"],
            passages=units["passages"],
            sentence_passage=np.load(gen_dir / "sentence_passage.npy"),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        log.warning("saved indexes in %s are unreadable (%s); rebuilding from SQLite", folder, exc)
        return None


def open_indexes(store: Store, folder: Path) -> Indexes:
    """The current indexes: loaded when saved for this generation, else rebuilt and saved."""
    generation = store.generation
    loaded = load_indexes(folder, generation, store.model)
    if loaded is not None:
        return loaded
    indexes = build_indexes(store)
    try:
        save_indexes(indexes, folder, store.model)
    except OSError as exc:  # a read-only or full disk still answers, just slower next time
        log.warning("could not save indexes to %s: %s", folder, exc)
    return indexes
