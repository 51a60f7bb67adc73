"""Search indexes derived from the SQLite store: FAISS for vectors, BM25 for words.

They are a cache: saved in a folder per store generation, swapped in atomically, and rebuilt
from SQLite whenever they are missing, stale (the store changed since) or unreadable.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import mmap
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from store.bm25 import BM25, Rows
from store.db import Snapshot, Store
from store.tokens import RESIDENT_TOKENS_MAX, TokenTable

if TYPE_CHECKING:
    import faiss

log = logging.getLogger(__name__)

Unit = Literal["sentences", "passages"]
DenseKind = Literal["flat", "ivf"]
_UNITS: tuple[Unit, Unit] = ("sentences", "passages")
INDEX_VERSION = 8  # 5: BM25 heads carry their weights; 6: sentence texts and spans; 7-8: tokens
# Up to this many vectors the search is exact (a matrix-vector product); above it an IVF
# index. Measured on 2 cores (`qabot bench`, 384-d MiniLM-like vectors): the product costs
# ~0.09 ms per 1k vectors on one BLAS thread (45k sentences: 4.0 ms; 2.2 ms on two threads,
# whose spinning then slows the next torch encode by ~12 ms), while IVF-SQ8 at the recall
# target costs 0.5-1 ms whatever the size (90k: 0.7 ms p50; 1M: see the README). A question
# is one encode (~11 ms) plus a search of the sentences and of the passages, so flat search
# stays under ~2 ms each up to ~20k vectors; past that the product alone would eat most of
# the 50% the ask may add to the encode. The ReQA benchmark (10k sentences) stays exact.
APPROXIMATE_ABOVE = 20_000
# The approximate index must find at least this share of the exact top 10; the number of
# lists probed is raised at build time until a sample of queries reaches it.
RECALL_TARGET = 0.95
_RECALL_MARGIN = 0.02  # tune to target + margin: the check's sample is small
_RECALL_QUERIES = 200
_NPROBES = (4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)
# k-means points per list: FAISS's floor is 39 (it warns under it); more only costs time.
_TRAIN_PER_LIST = 40
# The recall check rescores this many of the index's results exactly; the retriever takes
# its 100 best as candidates and scores each one (from the decoded codes, `UnitIndex.rows`).
RESCORE_DEPTH = 30
# A collection filter of at most this many rows on an IVF index is searched exactly, over
# its rows' decoded codes (`UnitIndex.nearest`); larger ones probe nprobe / share lists.
# Measured on ReQA's 10,250 MiniLM sentence vectors plus blends (scale.py's), collections
# of whole articles, 528 SQuAD questions, recall@10 against exact search of the collection:
# at 30,750 vectors (512 lists, 24 probed) a plain filtered IVF search found 0.04 / 0.26 /
# 0.44 / 0.54 / 0.81 / 0.96 at 0.7 / 2.8 / 5.6 / 8 / 28 / 100% of the rows; this, 1.0 /
# 1.0 / 0.998 / 0.99 / 0.962 / 0.959. At 61,500 (1024 lists, 32 probed), 0.5 / 1 / 3.3 /
# 6.9 / 11 / 30%: plain 0.09 / 0.23 / 0.43 / 0.60 / 0.68 / 0.92; this 1.0 / 1.0 / 1.0 /
# 0.984 / 0.976 / 0.986. Decoding costs ~1.3 us a row on one thread (1,024 rows: ~1.3 ms)
# and grew faster past that here, so larger collections take the lists instead.
EXACT_FILTER_ROWS = 1024


@dataclass
class UnitIndex:
    """Sentences or passages, in a fixed order shared by every array here."""

    rowids: np.ndarray  # int64: the row in SQLite
    article: np.ndarray  # int32: position in Indexes.article_ids
    position: np.ndarray  # int32: sentence index in its article (passage index for passages)
    vectors: np.ndarray  # float32 (n, dim), normalised
    bm25: BM25
    faiss_index: faiss.Index | None = None
    # How the dense index was built and what its recall check found (see `build_dense`).
    dense_info: dict[str, float | int | str] = field(default_factory=dict)
    # Sentences only: what an answer quotes, so that quoting needs no SQLite read.
    texts: TextTable | None = None
    start: np.ndarray | None = None  # int32: offsets in the article's cleaned text
    end: np.ndarray | None = None
    # Sentences only: their word pieces' vectors, for reranking (store/tokens.py).
    tokens: TokenTable | None = None

    def dense(self) -> faiss.Index:
        if self.faiss_index is None:
            self.faiss_index, self.dense_info = build_dense(self.vectors)
        return self.faiss_index

    def nearest(self, qvec: np.ndarray, k: int, ok: np.ndarray | None = None) -> np.ndarray:
        """Positions of the k nearest vectors to `qvec` (in no order), among those `ok` allows.

        Behind an IVF index a filter (a collection) of few rows is searched exactly, over its
        own rows: probing the lists that are nearest the question finds too few of a small
        collection's vectors (see EXACT_FILTER_ROWS). Larger ones probe more lists, as many
        as hold about as many of its vectors as an unfiltered search scans.
        """
        import faiss

        n = len(self.rowids)
        k = min(k, n)
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        index: faiss.Index = self.dense()
        if isinstance(index, faiss.IndexFlat):
            # Exact search for one question: a matrix-vector product is several times faster
            # than FAISS's single-query path (0.2 ms against 0.4-1.4 ms over 10k vectors).
            scores = self.vectors @ qvec
            if ok is not None:
                scores = np.where(ok, scores, -np.inf)
                k = min(k, int(ok.sum()))
            return _top(scores, k)
        q = np.ascontiguousarray(qvec.reshape(1, -1), dtype=np.float32)
        if ok is None:
            _, found = index.search(q, k)
            return _found(found)
        allowed = np.flatnonzero(ok).astype(np.int64)
        if allowed.size <= EXACT_FILTER_ROWS:
            return allowed[_top(self.rows(allowed) @ qvec, min(k, allowed.size))]
        assert isinstance(index, faiss.IndexIVF)
        # Kept alive until the search returns: the selector only points at it.
        bits = np.packbits(ok, bitorder="little")
        params = faiss.SearchParametersIVF(  # type: ignore[call-arg]
            sel=faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits)),
            nprobe=filtered_nprobe(int(index.nprobe), int(index.nlist), allowed.size / n),
        )
        _, found = index.search(q, min(k, allowed.size), params=params)
        return _found(found)

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The vectors at these positions, for scoring a question's candidates.

        Behind an IVF index they are decoded from its 8-bit codes, which are in memory once
        `make_resident` has run (cosines within 0.002 of the exact ones), instead of read
        from the memory-mapped float32 file: at a million passages that file is 8 GB, and an
        ask that read its few hundred candidates from it waited on the disk whenever the page
        cache had let them go.
        """
        import faiss

        keys = np.ascontiguousarray(positions, dtype=np.int64)
        if isinstance(self.faiss_index, faiss.IndexIVF):
            return np.asarray(self.faiss_index.reconstruct_batch(keys), dtype=np.float32)
        return np.ascontiguousarray(self.vectors[keys], dtype=np.float32)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k largest scores, in no order (without negating a copy first)."""
    n = len(scores)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.argpartition(scores, n - k)[n - k :].astype(np.int64)


def _found(found: np.ndarray) -> np.ndarray:
    """One query's FAISS results without the -1s of a short list."""
    row = found[0]
    return row[row >= 0].astype(np.int64)


def filtered_nprobe(nprobe: int, nlist: int, share: float) -> int:
    """Lists to probe when only `share` of the vectors may be returned: `nprobe` / share,
    so that about as many allowed vectors are scanned as an unfiltered search scans."""
    return max(1, min(nlist, math.ceil(nprobe / max(share, 1e-9))))


class TextTable:
    """Texts by position: one UTF-8 file and the offsets into it.

    An answer's sentences are read from here instead of from SQLite rows: at a million
    passages those rows sit in a 14 GB file that the page cache cannot hold, and an ask that
    read its few dozen candidates' rows waited ~7 ms on the disk. This file is ~130 bytes a
    sentence (0.7 GB at 4.5M sentences), small enough to hold in memory (`make_resident`):
    read through a mapping with its pages on disk, an ask's ~44 texts cost 50-150 ms.
    """

    def __init__(self, data: bytes | mmap.mmap, offsets: np.ndarray) -> None:
        self.data = data
        self.offsets = offsets  # int64, len(texts) + 1

    @classmethod
    def of(cls, texts: list[str]) -> TextTable:
        encoded = [t.encode("utf-8") for t in texts]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        return cls(b"".join(encoded), offsets)

    def get(self, positions: list[int]) -> list[str]:
        """The texts at these positions, in order."""
        at = np.asarray(positions, dtype=np.int64)
        data = self.data
        return [
            data[lo:hi].decode("utf-8")
            for lo, hi in zip(self.offsets[at].tolist(), self.offsets[at + 1].tolist(), strict=True)
        ]

    def save(self, stem: Path) -> None:
        stem.with_name(stem.name + ".text").write_bytes(self.data)
        np.save(stem.with_name(stem.name + ".text_offsets.npy"), self.offsets)

    @classmethod
    def load(cls, stem: Path, *, mapped: bool = False) -> TextTable:
        """The saved texts, read into memory or (`mapped`) memory-mapped."""
        offsets = np.load(
            stem.with_name(stem.name + ".text_offsets.npy"), mmap_mode="r" if mapped else None
        )
        with open(stem.with_name(stem.name + ".text"), "rb") as f:
            if int(offsets[-1]) == 0:
                return cls(b"", offsets)
            # Mapped without MADV_WILLNEED: reading the whole file ahead held up the first
            # asks' own reads (1M passages, page cache dropped: ask ratio 1.99 against 1.69).
            if mapped:
                return cls(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), offsets)
            return cls(f.read(), offsets)


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
    # The BM25 rows of `stats_sample` (its sentences, their passages), gathered at build
    # time: at 4.5M sentences that takes 1.4 s, which a bot's first question waited for.
    sample_rows: tuple[Rows, Rows] | None = None
    # Their vectors as searches score them (`UnitIndex.rows`), saved beside the indexes:
    # decoding them from a memory-mapped IVF whose pages were on disk took a first question
    # 2.1 s at 4.5M sentences (8,192 scattered reads).
    sample_vectors: tuple[np.ndarray, np.ndarray] | None = None
    # Per article (as `article_ids`): JSON [title, publisher, url, published, source], what
    # an answer cites. From SQLite, cold at 1M passages, citing took 95 ms a question (p50).
    article_sources: TextTable | None = None
    # The saved generation's folder while parts are memory-mapped from it (`make_resident`).
    mapped_from: Path | None = None

    @cached_property
    def article_position(self) -> dict[str, int]:
        """Each article id's position in `article_ids`."""
        return {a: i for i, a in enumerate(self.article_ids)}

    def collection_mask(self, names: list[str] | None) -> np.ndarray | None:
        """Which articles belong to these collections (None: every article)."""
        if names is None or set(self.collections) <= set(names):
            return None
        wanted = [i for i, c in enumerate(self.collections) if c in names]
        return np.isin(self.article_collection, wanted)


# Population statistics for the retriever's z-scores come from at most this many sentences
# (a fixed, evenly spread sample), so a question costs the same on a store of millions.
STATS_SAMPLE = 4096


def stats_sample(n: int) -> np.ndarray:
    """Positions of the sentences whose scores stand for all `n` (ascending, distinct)."""
    return (np.arange(n) if n <= STATS_SAMPLE else np.linspace(0, n - 1, STATS_SAMPLE)).astype(
        np.int64
    )


def sample_rows(indexes: Indexes) -> tuple[Rows, Rows]:
    """The BM25 rows of the stats sample's sentences and of their passages."""
    sample = stats_sample(len(indexes.sentences.rowids))
    return (
        indexes.sentences.bm25.rows(sample),
        indexes.passages.bm25.rows(indexes.sentence_passage[sample].astype(np.int64)),
    )


def sample_vectors(indexes: Indexes) -> tuple[np.ndarray, np.ndarray]:
    """The vectors of the stats sample's sentences and of their passages (`UnitIndex.rows`)."""
    sample = stats_sample(len(indexes.sentences.rowids))
    return (
        indexes.sentences.rows(sample),
        indexes.passages.rows(indexes.sentence_passage[sample].astype(np.int64)),
    )


def set_threads(threads: int | None = None) -> None:
    """Cap FAISS's OpenMP threads at the machine's cores (default), or at `threads`.

    More threads than cores (containers often report the host's) make OpenMP spin against
    the model's own threads; one query is searched on one thread either way.
    """
    import faiss

    faiss.omp_set_num_threads(max(1, threads or len(os.sched_getaffinity(0))))


def dense_kind(n: int) -> DenseKind:
    """The dense index for `n` vectors: exact while small, IVF past APPROXIMATE_ABOVE."""
    return "ivf" if n > APPROXIMATE_ABOVE else "flat"


def ivf_lists(n: int) -> int:
    """Inverted lists for `n` vectors: about 4 sqrt(n), a power of two, at least 64.

    Finer lists need fewer vectors scanned for the same recall. Measured on 450k sentence
    vectors with 200 SQuAD questions (search 100, exact rescoring, recall@10): 512 lists
    reach 0.958 scanning 16 (1.1 ms); 2048 lists reach 0.977 scanning 32 (0.66 ms). The price
    is k-means time at build (2.4 s against 18 s there).
    """
    return max(64, 1 << max(0, round(math.log2(4 * math.sqrt(max(n, 1))))))


def build_dense(
    vectors: np.ndarray, kind: DenseKind | None = None, *, seed: int = 0
) -> tuple[faiss.Index, dict[str, float | int | str]]:
    """The FAISS index `dense_kind` picks for these normalised vectors, and how it was built.

    IVF stores 8-bit scalar-quantised codes (384 bytes a vector instead of 1,536: the exact
    vectors stay in the memory-mapped .npy that the retriever rescores candidates with),
    and its lists probed are raised until recall@10 against exact search reaches
    RECALL_TARGET on a sample of queries; the figures go into the returned info.
    """
    import faiss

    set_threads()
    n, dim = vectors.shape if vectors.ndim == 2 else (0, 1)
    # Batched searches (evaluation, many users) only use BLAS above this many distance
    # computations; the default (128k) leaves them on a slow scalar path.
    faiss.cvar.distance_compute_blas_threshold = 16
    kind = kind or dense_kind(n)
    started = time.perf_counter()
    if kind == "flat" or n == 0:
        index = faiss.IndexFlatIP(dim)
        if n:
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return index, {"kind": "flat", "n": n, "recall10": 1.0}
    rng = np.random.default_rng(seed)
    nlist = min(ivf_lists(n), max(1, n // _TRAIN_PER_LIST))
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
    )
    ivf.cp.niter = 10  # k-means converges enough for routing; 25 (default) costs 2.5x
    train = np.sort(rng.choice(n, size=min(n, _TRAIN_PER_LIST * nlist), replace=False))
    ivf.train(np.ascontiguousarray(vectors[train], dtype=np.float32))
    for start in range(0, n, 262_144):  # bounded temporaries on multi-GB mmapped inputs
        ivf.add(np.ascontiguousarray(vectors[start : start + 262_144], dtype=np.float32))
    _with_direct_map(ivf)
    trained = time.perf_counter() - started
    queries = recall_queries(vectors, _RECALL_QUERIES, rng)
    truth = exact_top(vectors, queries, 10)
    recall = 0.0
    for nprobe in _NPROBES:
        ivf.nprobe = min(nprobe, nlist)
        recall = recall_at_k(ivf, queries, truth, vectors)
        if recall >= RECALL_TARGET + _RECALL_MARGIN or ivf.nprobe == nlist:
            break
    if recall < RECALL_TARGET:
        log.warning(
            "IVF over %d vectors reaches recall@10 %.3f at nprobe %d, under the %.2f target",
            n,
            recall,
            ivf.nprobe,
            RECALL_TARGET,
        )
    info: dict[str, float | int | str] = {
        "kind": "ivf",
        "n": n,
        "nlist": nlist,
        "nprobe": int(ivf.nprobe),
        "recall10_check": round(recall, 4),
        "build_s": round(trained, 2),
        "check_s": round(time.perf_counter() - started - trained, 2),
    }
    log.info("built IVF index: %s", info)
    return ivf, info


def _with_direct_map(index: faiss.Index) -> None:
    """Let an IVF index decode a vector by its id (`UnitIndex.rows`): 8 bytes a vector."""
    import faiss

    no_map = faiss.DirectMap.NoMap  # type: ignore[attr-defined]
    if isinstance(index, faiss.IndexIVF) and index.direct_map.type == no_map:
        index.make_direct_map()


def recall_queries(vectors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Queries for a recall check when no real ones are at hand: stored vectors blended with
    another and with noise, so they sit between points (as questions sit near, not on, their
    answers) instead of finding themselves at distance zero."""
    n, dim = vectors.shape
    a = np.asarray(vectors[np.sort(rng.choice(n, size=min(n, count), replace=False))])
    b = np.asarray(vectors[np.sort(rng.choice(n, size=len(a), replace=True))])
    noise = rng.standard_normal(a.shape).astype(np.float32) / np.sqrt(dim)
    # Calibrated against 200 SQuAD questions over 450k sentence vectors in 2048 lists
    # (search 30, rescored; recall@10 at 8/16/32/64 lists probed): the questions reached
    # 0.897/0.937/0.977/0.991; a + 0.5b + 1.0 noise reached 0.998 at 4 (far too easy: it
    # lands among near-copies of a), a + b + 2 noise 0.909/0.958/0.990/0.999, a + 0.5b +
    # 3 noise 0.868/0.934/0.968/0.998. This sits between the last two, at cosine ~0.4 to
    # its nearest vector.
    q = a + 0.75 * b + 2.5 * noise
    return np.ascontiguousarray(q / np.linalg.norm(q, axis=1, keepdims=True), dtype=np.float32)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Positions of each query's exact top `k` by inner product, best first (blockwise, so
    a few million vectors never need a queries x n score matrix at once)."""
    best_s = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    block = 262_144
    for start in range(0, len(vectors), block):
        scores = queries @ np.asarray(vectors[start : start + block], dtype=np.float32).T
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(scores, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + start], axis=1)
        keep = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(cand_s, keep, axis=1)
        best_i = np.take_along_axis(cand_i, keep, axis=1)
    return best_i


def recall_at_k(
    index: faiss.Index,
    queries: np.ndarray,
    truth: np.ndarray,
    vectors: np.ndarray | None = None,
    depth: int = RESCORE_DEPTH,
) -> float:
    """Mean share of each query's exact top k (`truth` rows) found in the index's top k.

    With `vectors`, as the retriever searches: the index's best `depth`, rescored with the
    exact vectors, then the top k of those (8-bit codes reorder near-identical vectors;
    rescoring puts them back in order)."""
    k = truth.shape[1]
    q = np.ascontiguousarray(queries, dtype=np.float32)
    _, found = index.search(q, depth if vectors is not None else k)
    hits = []
    for row, f, t in zip(q, found, truth, strict=True):
        f = f[f >= 0]
        if vectors is not None and f.size:
            f = np.sort(f)  # ascending rows read a memory-mapped matrix in order
            f = f[np.argsort(-(np.asarray(vectors[f]) @ row), kind="stable")]
        hits.append(len(set(f[:k].tolist()) & set(t.tolist())))
    return float(np.mean(hits)) / k if hits else 1.0


def _unit_from_store(
    store: Snapshot, table: Unit, article_pos: dict[str, int]
) -> tuple[UnitIndex, list[tuple[str, int]]]:
    rowids, article, position, docs, keys, texts, spans = [], [], [], [], [], [], []
    dim = store.dim
    # Filled in place: a list of per-row byte strings joined at the end would hold every
    # vector twice, 15 GB at a million passages' five million sentences. The count and the
    # rows come from one snapshot (`build_indexes`), so they agree.
    count = store.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    matrix = np.empty((count, dim), dtype=np.float32)
    token_rows: list[tuple[np.ndarray, np.ndarray] | None] = []
    for row, (rowid, article_id, _c, title, text, idx, vec, first, last, ids, toks) in enumerate(
        store.iter_units(table)
    ):
        rowids.append(rowid)
        article.append(article_pos[article_id])
        position.append(idx)
        matrix[row] = np.frombuffer(vec, dtype=np.float32)
        # Both carry their article's title (the topic): on ReQA title + sentence beats the
        # sentence alone for BM25; inside one article the title words score every sentence
        # alike, so the sentence that says the thing still outranks its neighbours.
        docs.append(f"{title}\n{text}")
        keys.append((article_id, idx))
        if table == "sentences":
            texts.append(text)
            spans.append((first, last))
            token_rows.append(
                None
                if ids is None or toks is None
                else (np.frombuffer(ids, np.int32), np.frombuffer(toks, np.int8))
            )
    matrix = matrix[: len(rowids)]  # a row whose vector is missing is not joined
    unit = UnitIndex(
        rowids=np.asarray(rowids, dtype=np.int64),
        article=np.asarray(article, dtype=np.int32),
        position=np.asarray(position, dtype=np.int32),
        vectors=matrix,
        bm25=BM25.build(docs),
        dense_info={"kind": dense_kind(len(rowids)), "n": len(rowids)},
    )
    if table == "sentences":
        span = np.asarray(spans, dtype=np.int32).reshape(-1, 2)
        unit.texts, unit.start, unit.end = TextTable.of(texts), span[:, 0].copy(), span[:, 1].copy()
        projection = store.token_projection()
        if projection is not None:
            unit.tokens = TokenTable.of(token_rows, projection)
    return unit, keys


def build_indexes(store: Store) -> Indexes:
    """Build every derived index from SQLite, from one snapshot of it: an ingest committing
    in another process between two of these reads made their rows disagree (a sentence of
    an article the articles' read had not seen: KeyError), and the generation recorded is
    the snapshot's own."""
    with store.snapshot() as snapshot:
        return _build_indexes(snapshot)


def _build_indexes(store: Snapshot) -> Indexes:
    started = time.perf_counter()
    generation = store.generation
    rows = store.execute(
        "SELECT id, collection, title, publisher, url, published, source FROM articles ORDER BY id"
    ).fetchall()
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
        article_sources=TextTable.of([json.dumps(list(r[2:])) for r in rows]),
    )
    indexes.sample_rows = sample_rows(indexes)
    log.info(
        "built indexes for %d sentences and %d passages in %.2fs",
        len(sentences.rowids),
        len(passages.rowids),
        time.perf_counter() - started,
    )
    return indexes


# A `.building-*` folder with no lock file beside it (saved before they had one, or its
# save not yet past `mkdtemp`) is only taken for abandoned once this old.
_ABANDONED_AFTER_S = 3600


def _lock_building(tmp: Path) -> int:
    """Hold an exclusive lock beside a folder being written: a process killed halfway
    drops it, so the next save knows the folder is abandoned (`remove_abandoned_builds`)."""
    fd = os.open(tmp.with_name(tmp.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _unlock_building(tmp: Path, fd: int) -> None:
    tmp.with_name(tmp.name + ".lock").unlink(missing_ok=True)  # before the lock is let go
    os.close(fd)


def remove_abandoned_builds(folder: Path) -> None:
    """Remove the temporary folders of saves killed halfway (each up to a whole copy of the
    indexes), never one a live process is writing: its lock is held, or it has no lock
    file yet and is younger than _ABANDONED_AFTER_S."""
    try:
        leftovers = [p for p in folder.glob(".building-*") if not p.name.endswith(".lock")]
    except OSError:
        return
    for tmp in leftovers:
        lock = tmp.with_name(tmp.name + ".lock")
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            try:
                if time.time() - tmp.stat().st_mtime < _ABANDONED_AFTER_S:
                    continue
            except OSError:
                continue
            log.info("removing %s, abandoned by an earlier save", tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a live save is writing it
            os.close(fd)
            continue
        log.info("removing %s, left by a save that was killed", tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        lock.unlink(missing_ok=True)
        os.close(fd)
    for lock in folder.glob(".building-*.lock"):  # whose folder is gone
        if not lock.with_suffix("").exists():
            try:
                fd = os.open(lock, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                lock.unlink(missing_ok=True)
            except OSError:
                pass
            finally:
                os.close(fd)


def save_indexes(indexes: Indexes, folder: Path, model: str) -> None:
    """Write the indexes to `folder/gen-N` and point `folder/CURRENT` at it atomically."""
    import faiss

    folder.mkdir(parents=True, exist_ok=True)
    remove_abandoned_builds(folder)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=folder))
    lock = _lock_building(tmp)
    try:
        for name in ("sentences", "passages"):
            unit: UnitIndex = getattr(indexes, name)
            np.save(tmp / f"{name}.rowids.npy", unit.rowids)
            np.save(tmp / f"{name}.article.npy", unit.article)
            np.save(tmp / f"{name}.position.npy", unit.position)
            np.save(tmp / f"{name}.vectors.npy", unit.vectors)
            unit.bm25.save(tmp / f"{name}.bm25")
            if unit.texts is not None and unit.start is not None and unit.end is not None:
                unit.texts.save(tmp / name)
                np.save(tmp / f"{name}.start.npy", unit.start)
                np.save(tmp / f"{name}.end.npy", unit.end)
            if unit.tokens is not None:
                unit.tokens.save(tmp)
            # A flat index is the vectors themselves, rebuilt on load in milliseconds.
            if dense_kind(len(unit.rowids)) != "flat":
                faiss.write_index(unit.dense(), str(tmp / f"{name}.faiss"))
        # After the dense indexes exist: the sample is decoded from them as asks decode it.
        indexes.sample_vectors = sample_vectors(indexes)
        for name, vectors in zip(_UNITS, indexes.sample_vectors, strict=True):
            np.save(tmp / f"sample.{name}.vectors.npy", vectors)
        np.save(tmp / "article_collection.npy", indexes.article_collection)
        assert indexes.article_sources is not None and indexes.sample_rows is not None
        indexes.article_sources.save(tmp / "articles")
        np.save(tmp / "sentence_passage.npy", indexes.sentence_passage)
        from scipy import sparse

        for name, rows in zip(_UNITS, indexes.sample_rows, strict=True):
            sparse.save_npz(tmp / f"sample.{name}.npz", rows.weights, compressed=False)
        manifest = {
            "version": INDEX_VERSION,
            "generation": indexes.generation,
            "model": model,
            "article_ids": indexes.article_ids,
            "collections": indexes.collections,
            "dense": {
                name: getattr(indexes, name).dense_info for name in ("sentences", "passages")
            },
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
        _unlock_building(tmp, lock)
    for old in folder.glob("gen-*"):
        if old.name != f"gen-{indexes.generation}":
            shutil.rmtree(old, ignore_errors=True)


_READ_PIECE = 4 << 20  # ~30 ms of this disk: the longest a question waits behind the read


def _read_through(path: Path, pause: Callable[[], None] | None) -> None:
    """Bring a file (or a folder's files) into the page cache, a piece at a time."""
    if path.is_dir():
        for part in sorted(path.iterdir()):
            _read_through(part, pause)
        return
    piece = bytearray(_READ_PIECE)
    with open(path, "rb", buffering=0) as f:
        while True:
            if pause is not None:
                pause()
            if not f.readinto(piece):
                return


def _current_manifest(folder: Path) -> tuple[Path, dict[str, Any]]:
    """The folder of the saved generation `CURRENT` points at, and its manifest."""
    gen_dir = folder / (folder / "CURRENT").read_text(encoding="utf-8").strip()
    return gen_dir, json.loads((gen_dir / "manifest.json").read_text(encoding="utf-8"))


def describe_indexes(folder: Path, generation: int) -> dict[str, str]:
    """What the saved indexes for this generation are, for `qabot stats`: per unit, the
    dense index and its measured recall, or why there is none yet."""
    try:
        _, manifest = _current_manifest(folder)
    except (OSError, ValueError):
        return {"index": "not built yet (built by the next ask)"}
    if manifest.get("generation") != generation or manifest.get("version") != INDEX_VERSION:
        return {"index": "out of date (rebuilt by the next ask)"}
    out = {}
    for name, info in manifest.get("dense", {}).items():
        if info.get("kind") == "ivf":
            out[f"{name}_index"] = (
                f"IVF-SQ8 over {info['n']:,} vectors, {info['nlist']} lists, "
                f"{info['nprobe']} probed, recall@10 {info['recall10_check']} vs exact"
            )
        else:
            out[f"{name}_index"] = f"exact over {info.get('n', 0):,} vectors"
    return out


def load_indexes(folder: Path, generation: int, model: str) -> Indexes | None:
    """The saved indexes for this generation, memory-mapped, or None when missing, stale or
    unreadable.

    Mapped, not read: at a million passages the indexes are 3.5 GB, which took 12-46 s to
    read whenever the page cache had let the files go (this disk reads ~130 MB/s), and a
    one-off `qabot ask` needs only a few of their pages. A process that stays up calls
    `make_resident` to read them into memory behind its first questions (see there).
    """
    remove_abandoned_builds(folder)
    try:
        gen_dir, manifest = _current_manifest(folder)
        if (manifest["version"], manifest["generation"], manifest["model"]) != (
            INDEX_VERSION,
            generation,
            model,
        ):
            return None
        units = {name: _load_unit(gen_dir, name, manifest, mapped=True) for name in _UNITS}
        indexes = Indexes(
            generation=generation,
            article_ids=list(manifest["article_ids"]),
            article_collection=np.load(gen_dir / "article_collection.npy"),
            collections=list(manifest["collections"]),
            sentences=units["sentences"],
            passages=units["passages"],
            sentence_passage=np.load(gen_dir / "sentence_passage.npy", mmap_mode="r"),
            mapped_from=gen_dir,
        )
        # Every folder of this INDEX_VERSION holds these; one missing is a broken folder,
        # rebuilt like any other (FileNotFoundError below).
        from scipy import sparse

        indexes.sample_rows = (
            Rows(sparse.load_npz(gen_dir / "sample.sentences.npz").tocsc()),
            Rows(sparse.load_npz(gen_dir / "sample.passages.npz").tocsc()),
        )
        indexes.article_sources = TextTable.load(gen_dir / "articles", mapped=True)
        indexes.sample_vectors = (
            np.load(gen_dir / "sample.sentences.vectors.npy"),
            np.load(gen_dir / "sample.passages.vectors.npy"),
        )
        return indexes
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        log.warning("saved indexes in %s are unreadable (%s); rebuilding from SQLite", folder, exc)
        return None


def _load_unit(gen_dir: Path, name: str, manifest: dict[str, Any], *, mapped: bool) -> UnitIndex:
    """One unit's saved index, memory-mapped or read into memory (the float32 vectors are
    mapped either way: only exact search of small stores and rebuilds read them)."""
    mode: Literal["r"] | None = "r" if mapped else None
    faiss_file = gen_dir / f"{name}.faiss"
    faiss_index = None
    if faiss_file.exists():
        import faiss

        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mapped else 0
        faiss_index = faiss.read_index(str(faiss_file), flags)
        _with_direct_map(faiss_index)
    unit = UnitIndex(
        rowids=np.load(gen_dir / f"{name}.rowids.npy", mmap_mode=mode),
        article=np.load(gen_dir / f"{name}.article.npy", mmap_mode=mode),
        position=np.load(gen_dir / f"{name}.position.npy", mmap_mode=mode),
        vectors=np.load(gen_dir / f"{name}.vectors.npy", mmap_mode="r"),
        bm25=BM25.load(gen_dir / f"{name}.bm25", mapped=mapped),
        faiss_index=faiss_index,
        dense_info=dict(manifest.get("dense", {}).get(name, {})),
    )
    if name == "sentences":
        unit.texts = TextTable.load(gen_dir / name, mapped=mapped)
        unit.start = np.load(gen_dir / f"{name}.start.npy", mmap_mode=mode)
        unit.end = np.load(gen_dir / f"{name}.end.npy", mmap_mode=mode)
        unit.tokens = TokenTable.load(gen_dir, mapped=mapped)
    return unit


def make_resident(indexes: Indexes, pause: Callable[[], None] | None = None) -> float:
    """Read memory-mapped indexes into memory, part by part, swapping each in as it is read;
    the seconds it took (0 when they were built or read in memory already).

    For processes that stay up (the bot, `qabot serve`, the bench's ask probe): a FAISS
    index searched through its mapping costs twice the time (1M passages: 2.2 ms against
    1.1 ms a search, the lists' pages faulted in one by one), and mapped pages are the first
    this VM hands back when idle, so a question after a quiet hour would wait on the disk;
    memory the process owns stays (no swap). Questions go on meanwhile, answered from the
    mappings: each part is swapped for an identical copy, so no answer changes.

    The files are first read through the page cache in small pieces, calling `pause` before
    each: the retriever's waits while a question is being answered, whose own reads would
    otherwise queue behind these (measured cold at 1M: asks of 0.3-1.2 s during the read).
    """
    gen_dir = indexes.mapped_from
    if gen_dir is None:
        return 0.0
    started = time.perf_counter()
    manifest = json.loads((gen_dir / "manifest.json").read_text(encoding="utf-8"))
    for name in _UNITS:
        mapped: UnitIndex = getattr(indexes, name)
        for part in sorted(gen_dir.glob(f"{name}.*")):
            # The float32 vectors and large token vectors stay mapped (see `_load_unit`).
            big = part.name.endswith(".tokens.npy") and part.stat().st_size > RESIDENT_TOKENS_MAX
            if not part.name.endswith(".vectors.npy") and not big:
                _read_through(part, pause)
        unit = _load_unit(gen_dir, name, manifest, mapped=False)
        if mapped.faiss_index is not None and unit.faiss_index is not None:
            unit.faiss_index.nprobe = mapped.faiss_index.nprobe  # type: ignore[attr-defined]
        # Field by field, searches first: each swap is one attribute store, atomic under
        # the GIL, and a question that holds the old object reads the same values.
        for field_name in ("faiss_index", "bm25", "rowids", "article", "position"):
            setattr(mapped, field_name, getattr(unit, field_name))
        mapped.texts, mapped.start, mapped.end = unit.texts, unit.start, unit.end
        mapped.tokens = unit.tokens
    _read_through(gen_dir / "sentence_passage.npy", pause)
    indexes.sentence_passage = np.load(gen_dir / "sentence_passage.npy")
    if indexes.article_sources is not None:
        for part in sorted(gen_dir.glob("articles.*")):
            _read_through(part, pause)
        indexes.article_sources = TextTable.load(gen_dir / "articles")
    indexes.mapped_from = None
    took = time.perf_counter() - started
    log.info("indexes of generation %d read into memory in %.1fs", indexes.generation, took)
    return took


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
