"""The dense side of the indexes: the FAISS index over a unit's vectors, its rules (exact
while small, IVF past APPROXIMATE_ABOVE, lists probed tuned to RECALL_TARGET), the searches
and the recall tools. The only module of qabot that imports faiss.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

import numpy as np

if TYPE_CHECKING:
    import faiss

    DenseIndex: TypeAlias = faiss.Index

log = logging.getLogger(__name__)

DenseKind = Literal["flat", "ivf"]
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
# its 100 best as candidates and scores each one (from the decoded codes, `rows`).
RESCORE_DEPTH = 30
# A collection filter of at most this many rows on an IVF index is searched exactly, over
# its rows' decoded codes (`nearest`); larger ones probe nprobe / share lists.
# Measured on ReQA's 10,250 MiniLM sentence vectors plus blends (scale.py's), collections
# of whole articles, 528 SQuAD questions, recall@10 against exact search of the collection:
# at 30,750 vectors (512 lists, 24 probed) a plain filtered IVF search found 0.04 / 0.26 /
# 0.44 / 0.54 / 0.81 / 0.96 at 0.7 / 2.8 / 5.6 / 8 / 28 / 100% of the rows; this, 1.0 /
# 1.0 / 0.998 / 0.99 / 0.962 / 0.959. At 61,500 (1024 lists, 32 probed), 0.5 / 1 / 3.3 /
# 6.9 / 11 / 30%: plain 0.09 / 0.23 / 0.43 / 0.60 / 0.68 / 0.92; this 1.0 / 1.0 / 1.0 /
# 0.984 / 0.976 / 0.986. Decoding costs ~1.3 us a row on one thread (1,024 rows: ~1.3 ms)
# and grew faster past that here, so larger collections take the lists instead.
EXACT_FILTER_ROWS = 1024


def nearest(
    vectors: np.ndarray,
    index: faiss.Index,
    query: np.ndarray,
    k: int,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """Positions of the k nearest `vectors` to `query` (in no order), among those `allowed`
    lets through, searched behind `index` (built over them by `build_dense`).

    Behind an IVF index a filter (a collection) of few rows is searched exactly, over its
    own rows: probing the lists that are nearest the question finds too few of a small
    collection's vectors (see EXACT_FILTER_ROWS). Larger ones probe more lists, as many
    as hold about as many of its vectors as an unfiltered search scans.
    """
    import faiss

    ok = allowed
    qvec = query
    n = len(vectors)
    k = min(k, n)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if isinstance(index, faiss.IndexFlat):
        # Exact search for one question: a matrix-vector product is several times faster
        # than FAISS's single-query path (0.2 ms against 0.4-1.4 ms over 10k vectors).
        scores = vectors @ qvec
        if ok is not None:
            scores = np.where(ok, scores, -np.inf)
            k = min(k, int(ok.sum()))
        return _top(scores, k)
    q = np.ascontiguousarray(qvec.reshape(1, -1), dtype=np.float32)
    if ok is None:
        _, found = index.search(q, k)
        return _found(found)
    positions = np.flatnonzero(ok).astype(np.int64)
    if positions.size <= EXACT_FILTER_ROWS:
        return positions[_top(rows(vectors, index, positions) @ qvec, min(k, positions.size))]
    assert isinstance(index, faiss.IndexIVF)
    # Kept alive until the search returns: the selector only points at it.
    bits = np.packbits(ok, bitorder="little")
    params = faiss.SearchParametersIVF(  # type: ignore[call-arg]
        sel=faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits)),
        nprobe=filtered_nprobe(int(index.nprobe), int(index.nlist), positions.size / n),
    )
    _, found = index.search(q, min(k, positions.size), params=params)
    return _found(found)


def rows(vectors: np.ndarray, index: faiss.Index | None, positions: np.ndarray) -> np.ndarray:
    """The vectors at these positions, for scoring a question's candidates.

    Behind an IVF index they are decoded from its 8-bit codes, which are in memory once
    `make_resident` has run (cosines within 0.002 of the exact ones), instead of read
    from the memory-mapped float32 file: at a million passages that file is 8 GB, and an
    ask that read its few hundred candidates from it waited on the disk whenever the page
    cache had let them go.
    """
    import faiss

    keys = np.ascontiguousarray(positions, dtype=np.int64)
    if isinstance(index, faiss.IndexIVF):
        return np.asarray(index.reconstruct_batch(keys), dtype=np.float32)
    return np.ascontiguousarray(vectors[keys], dtype=np.float32)


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
    """Let an IVF index decode a vector by its id (`rows`): 8 bytes a vector."""
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


def write_dense(index: faiss.Index, path: Path) -> None:
    """Save a dense index (`read_dense` reads it back)."""
    import faiss

    faiss.write_index(index, str(path))


def read_dense(path: Path, *, mapped: bool) -> faiss.Index:
    """A saved dense index, memory-mapped (read-only) or read into memory, able to decode
    its vectors by id (`rows`)."""
    import faiss

    flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mapped else 0
    index = faiss.read_index(str(path), flags)
    _with_direct_map(index)
    return index
