"""Qdrant as the search engine of the derived indexes (`QABOT_QDRANT_URL`): the sentence and
passage vectors and their words live there, the collection a tenant key; the tables an
answer reads (texts, offsets, token vectors, sources) stay in the process, saved per
generation in the index folder's `qdrant/` (store/indexes/saved.py: `save_tables`) and
memory-mapped by the next process, as the local indexes are: built from the store on every
start they were 14 GB of token vectors in each process at a million passages, and minutes
of reading.

Layout (Qdrant's documented multitenancy: one Qdrant collection per kind of point, every
qabot collection a value of its `tenant` payload key, indexed `is_tenant`):
- `sentences` and `passages`: one point per unit, id `point_ids(article, index)` (a 64-bit
  mix of the two: integers cross the engine's bindings ~10x cheaper than UUIDs), a dense
  vector `dense` (Dot on the normalised vectors) and a sparse vector `words` with the IDF
  modifier: qabot's own tokens (`tokenize`), each a crc32 term number, weighted by qabot's
  BM25 term frequency part (k1, b, the average length recorded in `meta`); Qdrant multiplies
  in the IDF, log(1 + (N - df + 0.5) / (df + 0.5)), which is qabot's, so a score is qabot's
  BM25 score.
- `articles`: one marker per article whose points are all written (written after them,
  removed after them), and `meta`: the layout's version, model, BM25 parameters, average
  lengths and the store generation last synced.

Built from the store by generation: each new generation compares the store's articles with
the markers, deletes the points of articles gone and writes those of articles new. Every
point is a function of the store, so a sync killed halfway is finished by the next one and
`rebuild` (or another layout version) rewrites everything from the store.

Two transports behind one small interface (store/indexes/qdrant_transport.py): qdrant-client
for a server (`http://` or `https://`), and qdrant-edge-py, Qdrant's engine in this process
(`edge:///absolute/folder`, or `edge:` for the data folder): one process at a time.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from store.errors import SearchBackendError
from store.indexes.bm25 import count_tokens, tokenize
from store.indexes.build import (
    UNITS,
    Indexes,
    Unit,
    UnitRow,
    build_from_snapshot,
    stats_sample,
    unit_document,
)
from store.indexes.qdrant_transport import (
    ClientTransport,
    EdgeTransport,
    Hit,
    Point,
    Search,
    Transport,
    mask_url,
    open_transport,
)
from store.indexes.saved import build_saved, load_tables
from store.indexes.seams import Allowed, Matches

__all__ = [
    "ClientTransport",
    "EdgeTransport",
    "QdrantIndexes",
    "Transport",
    "mask_url",
    "open_transport",
]

if TYPE_CHECKING:
    from store.indexes.spill import Spill
    from store.seams import Store
    from store.seams import StoreReads as Snapshot

log = logging.getLogger(__name__)

# The points' layout; a Qdrant holding another is rebuilt from the store.
LAYOUT_VERSION = 1
# BM25 parameters: those of the local index (`BM25.build`), so both rank alike.
K1, B = 0.6, 0.3
# When the store's average document length has moved this far from the one the points
# were weighted with, every point is re-weighted (a new store's first articles, mostly).
LENGTH_DRIFT = 0.10
_BATCH = 256  # points a request
_META_ID = 0
# The subfolder of the index folder the tables an answer reads are saved in: apart from the
# local indexes' generations, so that switching a data folder between the two never
# reads one as the other (each manifest names its backend as well).
TABLES = "qdrant"
_HEX16 = re.compile(r"[0-9a-f]{16}")


# -- names and ids --------------------------------------------------------------------------


def article_key(article_id: str) -> int:
    """An article's 64-bit number: its 16 hex digits (qabot's ids are these already), and
    the id of its marker point."""
    if _HEX16.fullmatch(article_id):
        return int(article_id, 16)
    return int.from_bytes(hashlib.blake2b(article_id.encode(), digest_size=8).digest(), "big")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of 64-bit integers that scatters their bits."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def point_ids(articles: np.ndarray, indexes: np.ndarray) -> np.ndarray:
    """Units' point ids (uint64) from their articles' keys (`article_key`) and their
    indexes there: the same sentence of the same article version is always the same point.
    Two units share an id with odds of ~n^2 / 2^65 (5M units: 1 in 1.5 million)."""
    a = np.asarray(articles, dtype=np.uint64)
    i = np.asarray(indexes, dtype=np.uint64) + np.uint64(1)
    with np.errstate(over="ignore"):
        return _mix(a ^ _mix(i * np.uint64(0x9E3779B97F4A7C15)))


def point_id(article_id: str, index: int) -> int:
    """One unit's point id (`point_ids`)."""
    return int(point_ids(np.asarray([article_key(article_id)]), np.asarray([index]))[0])


def term(word: str) -> int:
    """A `tokenize`d word's number in the sparse vectors."""
    return zlib.crc32(word.encode("utf-8"))


def term_weights(words: list[str], avgdl: float) -> tuple[list[int], list[float]]:
    """A document's sparse vector: BM25's term frequency part of each distinct word, the
    IDF left to Qdrant (the `words` vector's modifier)."""
    counts: dict[int, int] = {}
    for w in words:
        t = term(w)
        counts[t] = counts.get(t, 0) + 1
    norm = K1 * (1.0 - B + B * len(words) / max(avgdl, 1e-9))
    return list(counts), [c * (K1 + 1.0) / (c + norm) for c in counts.values()]


# -- the seams over Qdrant ------------------------------------------------------------------


class PointKeys:
    """Positions of one unit's index order and the ids of their points, both ways."""

    def __init__(self, article_keys: np.ndarray, article: np.ndarray, index: np.ndarray) -> None:
        article = np.asarray(article, dtype=np.int64)
        self._ids = (
            point_ids(article_keys[article], index) if len(article) else np.zeros(0, np.uint64)
        )
        self._order = np.argsort(self._ids, kind="stable")
        self._sorted = self._ids[self._order]
        if len(self._sorted) > 1 and (self._sorted[1:] == self._sorted[:-1]).any():
            log.warning("two units share a Qdrant point id; one of them cannot be found")

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self, positions: np.ndarray) -> list[int]:
        return self._ids[np.asarray(positions, dtype=np.int64)].tolist()

    def positions(self, ids: list[int]) -> np.ndarray:
        """The positions of these points (-1 where this generation does not hold one)."""
        if not ids or len(self._sorted) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        wanted = np.asarray(ids, dtype=np.uint64)
        slot = np.minimum(np.searchsorted(self._sorted, wanted), len(self._sorted) - 1)
        return np.where(self._sorted[slot] == wanted, self._order[slot], -1).astype(np.int64)


def _tenants(allowed: Allowed | None) -> tuple[str, ...] | None:
    return None if allowed is None else allowed.collections


def _scored(keys: PointKeys, hits: list[Hit], positions: np.ndarray) -> np.ndarray:
    """The hits' scores at these positions (0 where there was none)."""
    out = np.zeros(len(positions), dtype=np.float32)
    if not hits:
        return out
    at = keys.positions([h.id for h in hits])
    where = {int(p): h.score for p, h in zip(at.tolist(), hits, strict=True) if p >= 0}
    for slot, p in enumerate(positions.tolist()):
        out[slot] = where.get(int(p), 0.0)
    return out


class QdrantVectors:
    """`VectorIndex` over one unit's points in Qdrant."""

    def __init__(self, transport: Transport, kind: Unit, keys: PointKeys, dim: int) -> None:
        self.transport = transport
        self.kind: Unit = kind
        self.keys = keys
        self.dim = dim

    def nearest(self, query: np.ndarray, k: int, allowed: Allowed | None = None) -> np.ndarray:
        if k <= 0 or (allowed is not None and not allowed.collections):
            return np.zeros(0, dtype=np.int64)
        search = Search("dense", np.asarray(query, dtype=np.float32).tolist(), k, _tenants(allowed))
        (hits,) = self.transport.search(self.kind, [search])
        found = self.keys.positions([h.id for h in hits])
        return found[found >= 0]

    def scores(self, query: np.ndarray, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size == 0:
            return np.zeros(0, dtype=np.float32)
        ids = self.keys.ids(positions)
        search = Search("dense", np.asarray(query, dtype=np.float32).tolist(), len(ids), ids=ids)
        (hits,) = self.transport.search(self.kind, [search])
        return _scored(self.keys, hits, positions)

    def rows(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        out = np.zeros((len(positions), self.dim), dtype=np.float32)
        if positions.size == 0:
            return out
        found = self.transport.retrieve(self.kind, self.keys.ids(positions), ["dense"])
        slot = {h.id: h.dense for h in found}
        for i, pid in enumerate(self.keys.ids(positions)):
            vec = slot.get(pid)
            if vec is not None:
                out[i] = vec
        return out


class QdrantWords:
    """`LexicalIndex` over one unit's sparse vectors in Qdrant: qabot's tokens and BM25,
    the IDF Qdrant's own (read back per word, once a generation, from the best match of
    that word alone: score / stored weight)."""

    def __init__(self, transport: Transport, kind: Unit, keys: PointKeys, documents: int) -> None:
        self.transport = transport
        self.kind: Unit = kind
        self.keys = keys
        self.documents = documents
        self._idf: dict[int, float] = {}
        self._lock = threading.Lock()

    def idf(self, terms: list[int]) -> list[float]:
        """These terms' IDF in Qdrant (0 for a term no document holds)."""
        missing = sorted({t for t in terms if t not in self._idf})
        if missing:
            probes = [Search("words", ([t], [1.0]), 1, with_words=True) for t in missing]
            found = self.transport.search(self.kind, probes)
            learnt = {}
            for t, hits in zip(missing, found, strict=True):
                value = 0.0
                if hits and hits[0].words is not None:
                    indices, values = hits[0].words
                    weight = dict(zip(indices, values, strict=True)).get(t, 0.0)
                    value = hits[0].score / weight if weight > 0 else 0.0
                learnt[t] = value
            with self._lock:
                self._idf.update(learnt)
        known = self._idf
        return [known[t] for t in terms]

    def terms(self, words: list[str]) -> list[int]:
        numbers = [term(w) for w in words]
        return [t for t, idf in zip(numbers, self.idf(numbers), strict=True) if idf > 0]

    def query_terms(self, query: str) -> list[int]:
        return self.terms(tokenize(query))

    def matches(self, terms: list[int], allowed: Allowed | None = None) -> Matches:
        return QdrantMatches(self, terms, allowed)

    def max_score(self, terms: list[int]) -> float:
        return float(sum(self.idf(terms)) * (K1 + 1.0))

    def unknown_share(self, words: list[str]) -> float:
        toks = sorted(set(words))
        if not toks or self.documents == 0:
            return 0.0
        # The rarest word a document could hold: in one document (BM25's idf at df = 1).
        rarest = math.log1p((self.documents - 1 + 0.5) / 1.5)
        idf = self.idf([term(w) for w in toks])
        weights = [v if v > 0 else rarest for v in idf]
        unknown = sum(w for w, v in zip(weights, idf, strict=True) if v <= 0)
        return unknown / max(sum(weights), 1e-9)


class QdrantMatches:
    """One query's matches in Qdrant: candidates by a sparse search, exact scores of given
    documents by the same search limited to their ids."""

    def __init__(self, words: QdrantWords, terms: list[int], allowed: Allowed | None) -> None:
        self.words = words
        counts: dict[int, int] = {}
        for t in terms:
            counts[t] = counts.get(t, 0) + 1
        self._vector = (list(counts), [float(c) for c in counts.values()])
        self._allowed = allowed

    def _empty(self) -> bool:
        return not self._vector[0] or (self._allowed is not None and not self._allowed.collections)

    def top(self, k: int) -> np.ndarray:
        if k <= 0 or self._empty():
            return np.zeros(0, dtype=np.int64)
        search = Search("words", self._vector, k, _tenants(self._allowed))
        (hits,) = self.words.transport.search(self.words.kind, [search])
        found = self.words.keys.positions([h.id for h in hits])
        return found[found >= 0]

    def at(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size == 0 or self._empty():
            return np.zeros(len(positions), dtype=np.float32)
        ids = self.words.keys.ids(positions)
        search = Search("words", self._vector, len(ids), ids=ids)
        (hits,) = self.words.transport.search(self.words.kind, [search])
        out = _scored(self.words.keys, hits, positions)
        if self._allowed is not None:
            out[~self._allowed.mask[positions]] = 0.0
        return out


class SampleWords:
    """The stored sparse vectors of the z-scores' sample, scored with Qdrant's IDF
    (`SampleScores`): by term, the sampled documents holding it and their weights."""

    def __init__(
        self, words: QdrantWords, vectors: list[tuple[list[int], list[float]] | None]
    ) -> None:
        self.words = words
        self.size = len(vectors)
        held = [(row, v) for row, v in enumerate(vectors) if v is not None and v[0]]
        terms = np.fromiter((t for _, v in held for t in v[0]), dtype=np.int64)
        weights = np.fromiter((w for _, v in held for w in v[1]), dtype=np.float32)
        rows = np.repeat(
            np.asarray([r for r, _ in held], dtype=np.int64),
            np.asarray([len(v[0]) for _, v in held], dtype=np.int64),
        )
        order = np.argsort(terms, kind="stable")
        self._terms, starts = np.unique(terms[order], return_index=True)
        self._bounds = np.append(starts, len(order)).astype(np.int64)
        self._rows, self._weights = rows[order], weights[order]

    def scores(self, terms: list[int]) -> np.ndarray:
        out = np.zeros(self.size, dtype=np.float32)
        if not terms or self._terms.size == 0:
            return out
        slots = np.searchsorted(self._terms, terms)
        for t, slot, idf in zip(terms, slots.tolist(), self.words.idf(terms), strict=True):
            if slot < self._terms.size and self._terms[slot] == t:
                lo, hi = self._bounds[slot], self._bounds[slot + 1]
                out[self._rows[lo:hi]] += np.float32(idf) * self._weights[lo:hi]
        return out


# -- building and syncing -------------------------------------------------------------------


@dataclass
class _Tally:
    """One article's units as written: counts and total lengths, per unit."""

    collection: str
    counts: dict[str, int] = field(default_factory=lambda: {"sentences": 0, "passages": 0})
    lengths: dict[str, int] = field(default_factory=lambda: {"sentences": 0, "passages": 0})

    def payload(self, article_id: str) -> dict[str, Any]:
        return {
            "kind": "article",
            "article": article_id,
            "tenant": self.collection,
            "counts": self.counts,
            "lengths": self.lengths,
        }


class _Sync:
    """One generation's sync of Qdrant with a store snapshot (see the module's docstring)."""

    def __init__(self, transport: Transport, snap: Snapshot, *, full: bool = False) -> None:
        self.transport = transport
        self.snap = snap
        self.full = full
        self.needed = True
        self.add: dict[str, str] = {}  # article id -> collection
        self.tallies: dict[str, _Tally] = {}
        self.kept: dict[str, dict[str, Any]] = {}
        self.avgdl: dict[str, float] = {}
        self.meta: dict[str, Any] | None = None
        self._buffer: dict[str, list[Point]] = {"sentences": [], "passages": []}
        self.written = 0
        self.removed = 0
        self.reweighted = False  # every point rewritten for a new average length

    def _compatible(self, meta: dict[str, Any] | None) -> bool:
        return meta is not None and (
            meta.get("version"),
            meta.get("model"),
            meta.get("dim"),
            meta.get("k1"),
            meta.get("b"),
        ) == (LAYOUT_VERSION, self.snap.model, self.snap.dim, K1, B)

    def prepare(self) -> None:
        t = self.transport
        meta = None
        if t.ready():
            found = t.retrieve("articles", [_META_ID], [])
            meta = found[0].payload if found else None
        if not self._compatible(meta):
            if meta is not None:
                log.warning("Qdrant at %s holds another layout or model; rebuilding it", t.where)
            t.create(self.snap.dim)
            self.full, meta = True, None
        self.meta = meta
        if not self.full and meta is not None and meta.get("generation") == self.snap.generation:
            self.needed = False
            return
        markers = (
            {}
            if self.full
            else {
                h.payload["article"]: h.payload
                for h in t.scroll("articles")
                if h.payload and h.payload.get("kind") == "article"
            }
        )
        articles = {row[0]: row[1] for row in self.snap.index_articles()}
        gone = sorted(set(markers) - set(articles))
        self.kept = {a: markers[a] for a in markers if a in articles}
        self.add = {a: c for a, c in articles.items() if a not in self.kept}
        if self.full or meta is None:
            self.avgdl = self._lengths_now()
        else:
            self.avgdl = {u: float(meta["avgdl"][u]) for u in UNITS}
        for start in range(0, len(gone), _BATCH):
            part = gone[start : start + _BATCH]
            for unit in UNITS:
                t.delete_articles(unit, part)
            t.delete_ids("articles", [article_key(a) for a in part])  # after their points
        self.removed = len(gone)

    def _lengths_now(self) -> dict[str, float]:
        """The store's average document length per unit, as BM25 counts it (a full build
        only: it tokenises every text)."""
        out: dict[str, float] = {}
        for unit in UNITS:
            total = n = 0
            for row in self.snap.iter_units(unit):
                total += count_tokens(unit_document(row[3], row[4]))
                n += 1
            out[unit] = total / n if n else 1.0
        return out

    def visit(self, unit: Unit, row: UnitRow) -> None:
        """A unit row of the snapshot: written when its article is new to Qdrant."""
        article_id, collection, title, text, idx, vec = (
            row[1],
            row[2],
            row[3],
            row[4],
            row[5],
            row[6],
        )
        if article_id not in self.add:
            return
        words = tokenize(unit_document(title, text))
        tally = self.tallies.setdefault(article_id, _Tally(collection))
        tally.counts[unit] += 1
        tally.lengths[unit] += len(words)
        point = Point(
            point_id(article_id, idx),
            np.frombuffer(vec, dtype=np.float32).tolist(),
            term_weights(words, self.avgdl[unit]),
            {"tenant": collection, "article": article_id},
        )
        buffer = self._buffer[unit]
        buffer.append(point)
        if len(buffer) >= _BATCH:
            self._flush(unit)

    def _flush(self, unit: Unit) -> None:
        buffer = self._buffer[unit]
        if buffer:
            self.transport.upsert(unit, buffer)
            self.written += len(buffer)
            self._buffer[unit] = []

    def finish(self) -> None:
        """Write what is left, the new articles' markers (after their points), and meta."""
        if not self.needed:
            return
        for unit in UNITS:
            self._flush(unit)
        for a in self.add:
            self.tallies.setdefault(a, _Tally(self.add[a]))
        markers = [
            Point(article_key(a), [1.0], None, t.payload(a)) for a, t in self.tallies.items()
        ]
        for start in range(0, len(markers), _BATCH):
            self.transport.upsert("articles", markers[start : start + _BATCH])
        now = self._average_lengths()
        drifted = any(
            abs(now[u] / max(self.avgdl[u], 1e-9) - 1.0) > LENGTH_DRIFT for u in UNITS if now[u]
        )
        if drifted and not self.full:
            log.info(
                "average lengths moved from %s to %s: re-weighting every point", self.avgdl, now
            )
            again = _Sync(self.transport, self.snap, full=True)
            again.avgdl, again.add = (
                now,
                {**{a: p["tenant"] for a, p in self.kept.items()}, **self.add},
            )
            for unit in UNITS:
                for row in self.snap.iter_units(unit):
                    again.visit(unit, row)
            again.finish()
            self.written += again.written
            self.reweighted = True
            return
        self.transport.upsert(
            "articles",
            [
                Point(
                    _META_ID,
                    [1.0],
                    None,
                    {
                        "kind": "meta",
                        "version": LAYOUT_VERSION,
                        "model": self.snap.model,
                        "dim": self.snap.dim,
                        "k1": K1,
                        "b": B,
                        "avgdl": self.avgdl,
                        "generation": self.snap.generation,
                    },
                )
            ],
        )
        if self.written or self.removed:
            self.transport.settle()

    def _average_lengths(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for unit in UNITS:
            n = sum(int(p["counts"][unit]) for p in self.kept.values())
            total = sum(int(p["lengths"][unit]) for p in self.kept.values())
            n += sum(t.counts[unit] for t in self.tallies.values())
            total += sum(t.lengths[unit] for t in self.tallies.values())
            out[unit] = total / n if n else 0.0
        return out


class QdrantIndexes:
    """`IndexSource` over a Qdrant: each generation synced into it from the store, then
    searched there (dense and lexical candidates, exact scores of given units)."""

    name = "qdrant"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        # What the last sync wrote and removed (points, articles), for tests and logs.
        self.last_sync: dict[str, int] = {}

    def open(
        self, store: Store, folder: Path, progress: Callable[[], None] | None = None
    ) -> Indexes:
        """Qdrant synced to the store's generation, and the tables an answer reads: those
        saved for it in `folder/qdrant` when they are, else built from the store and saved."""
        return self._open(store, folder, progress, fresh=False)

    def _open(
        self, store: Store, folder: Path, progress: Callable[[], None] | None, *, fresh: bool
    ) -> Indexes:
        started = time.perf_counter()
        tables = folder / TABLES
        with store.snapshot() as snap:
            sync = _Sync(self.transport, snap)
            sync.prepare()
            visit = sync.visit if sync.needed else None
            if visit is not None and progress is not None:
                inner = visit

                def visit(unit: Unit, row: UnitRow) -> None:
                    inner(unit, row)
                    progress()

            indexes = None if fresh else load_tables(tables, snap.generation, snap.model)
            loaded = indexes is not None
            if indexes is None:

                def build(spill: Spill | None) -> Indexes:
                    return build_from_snapshot(snap, local=False, visit=visit, spill=spill)

                indexes = build_saved(tables, snap.model, build, "qdrant", snap.dim)
            elif visit is not None:  # a Qdrant behind the saved tables: its points only
                for unit in UNITS:
                    for row in snap.iter_units(unit):
                        visit(unit, row)
            sync.finish()
        synced = time.perf_counter()
        self.last_sync = {
            "written": sync.written,
            "removed": sync.removed,
            "reweighted": int(sync.reweighted or sync.full),
        }
        self._attach(indexes, store.dim)
        log.info(
            "Qdrant at %s: generation %d, %d points written and %d articles removed, tables %s,"
            " in %.2fs; sample read in %.2fs",
            self.transport.where,
            indexes.generation,
            sync.written,
            sync.removed,
            f"loaded from {indexes.mapped_from}" if loaded else "built",
            synced - started,
            time.perf_counter() - synced,
        )
        return indexes

    def rebuild(
        self, store: Store, folder: Path, progress: Callable[[], None] | None = None
    ) -> Indexes:
        """Every point rewritten and the tables an answer reads built anew from the store
        (`qabot stats` shows the result)."""
        self.transport.create(store.dim)
        return self._open(store, folder, progress, fresh=True)

    def _attach(self, indexes: Indexes, dim: int) -> None:
        keys = np.asarray([article_key(a) for a in indexes.article_ids], dtype=np.uint64)
        for name in UNITS:
            unit = getattr(indexes, name)
            point_keys = PointKeys(keys, unit.article, unit.position)
            unit.dense_index = QdrantVectors(self.transport, name, point_keys, dim)
            unit.words_index = QdrantWords(self.transport, name, point_keys, len(unit.rowids))
            unit.dense_info = {"kind": "qdrant", "n": len(unit.rowids)}
        sample = stats_sample(len(indexes.sentences.rowids))
        sampled = (sample, indexes.sentence_passage[sample].astype(np.int64))
        vectors, rows = [], []
        for name, positions in zip(UNITS, sampled, strict=True):
            unit = getattr(indexes, name)
            words = unit.words_index
            assert isinstance(words, QdrantWords)
            ids = words.keys.ids(positions)
            found: dict[int, Hit] = {}
            for start in range(0, len(ids), 1024):
                part = ids[start : start + 1024]
                found.update(
                    (h.id, h) for h in self.transport.retrieve(name, part, ["dense", "words"])
                )
            matrix = np.zeros((len(ids), dim), dtype=np.float32)
            sparse: list[tuple[list[int], list[float]] | None] = []
            for i, pid in enumerate(ids):
                hit = found.get(pid)
                if hit is not None and hit.dense is not None:
                    matrix[i] = hit.dense
                sparse.append(None if hit is None else hit.words)
            vectors.append(matrix)
            rows.append(SampleWords(words, sparse))
        indexes.sample_vectors = (vectors[0], vectors[1])
        indexes.sample_rows = (rows[0], rows[1])

    def describe(self, store: Store, folder: Path) -> dict[str, str]:
        out = {"search": f"qdrant at {self.transport.where}"}
        try:
            if not self.transport.ready():
                out["qdrant"] = "answering; not built yet (built by the next ask)"
                return out
            found = self.transport.retrieve("articles", [_META_ID], [])
            meta = found[0].payload if found and found[0].payload else {}
            counts = {k: self.transport.count(k) for k in UNITS}
        except SearchBackendError as exc:
            out["qdrant"] = f"NOT ANSWERING: {exc}"
            return out
        state = (
            "up to date"
            if meta.get("generation") == store.generation
            else f"at change {meta.get('generation')} (synced by the next ask)"
        )
        out["qdrant"] = (
            f"answering; {counts['sentences']:,} sentence and {counts['passages']:,} passage "
            f"points, {state}"
        )
        return out

    def close(self) -> None:
        self.transport.close()
