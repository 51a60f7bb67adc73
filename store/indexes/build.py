"""The derived indexes of one store generation, and their build from a snapshot of the store."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from store.indexes import vectors as dense_vectors
from store.indexes.bm25 import BM25, Rows
from store.indexes.seams import Allowed, LexicalIndex, SampleScores, VectorIndex
from store.indexes.spill import SPILL_ROWS, Spill, shrink
from store.indexes.texts import TextTable
from store.indexes.tokens import TokenTable, TokenTableBuilder
from store.indexes.vectors import build_dense, dense_kind
from store.seams import Store, StoreReads, UnitRow

if TYPE_CHECKING:
    from store.indexes.vectors import DenseIndex

log = logging.getLogger(__name__)

Unit = Literal["sentences", "passages"]
UNITS: tuple[Unit, Unit] = ("sentences", "passages")


@dataclass
class UnitIndex:
    """Sentences or passages, in a fixed order shared by every array here.

    Searched here (FAISS over `vectors`, `bm25`) unless `dense_index` and `words_index`
    name another engine (Qdrant), which then holds the vectors and words instead.
    """

    rowids: np.ndarray  # int64: the row in SQLite
    article: np.ndarray  # int32: position in Indexes.article_ids
    position: np.ndarray  # int32: sentence index in its article (passage index for passages)
    vectors: np.ndarray  # float32 (n, dim), normalised; (0, dim) when searched elsewhere
    bm25: BM25 | None
    faiss_index: DenseIndex | None = None
    # How the dense index was built and what its recall check found (see `build_dense`).
    dense_info: dict[str, float | int | str] = field(default_factory=dict)
    # Sentences only: what an answer quotes, so that quoting needs no SQLite read.
    texts: TextTable | None = None
    start: np.ndarray | None = None  # int32: offsets in the article's cleaned text
    end: np.ndarray | None = None
    # Sentences only: their word pieces' vectors, for reranking (store/indexes/tokens.py).
    tokens: TokenTable | None = None
    # Another engine's search of these units (store/indexes/qdrant.py), or None: here.
    dense_index: VectorIndex | None = None
    words_index: LexicalIndex | None = None

    @property
    def words(self) -> LexicalIndex:
        """The lexical index these units are searched through."""
        if self.words_index is not None:
            return self.words_index
        assert self.bm25 is not None
        return self.bm25

    def dense(self) -> DenseIndex:
        if self.faiss_index is None:
            self.faiss_index, self.dense_info = build_dense(self.vectors)
        return self.faiss_index

    def nearest(self, query: np.ndarray, k: int, allowed: Allowed | None = None) -> np.ndarray:
        """Positions of the k nearest vectors to `query` (in no order), among those
        `allowed` lets through (`vectors.nearest`)."""
        if min(k, len(self.rowids)) == 0:
            return np.zeros(0, dtype=np.int64)
        if self.dense_index is not None:
            return self.dense_index.nearest(query, k, allowed)
        mask = None if allowed is None else allowed.mask
        return dense_vectors.nearest(self.vectors, self.dense(), query, k, mask)

    def scores(self, query: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Inner products of `query` with the vectors at these positions."""
        if self.dense_index is not None:
            return self.dense_index.scores(query, positions)
        return np.asarray(self.rows(positions) @ query, dtype=np.float32)

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The vectors at these positions as searches score them (`vectors.rows`)."""
        if self.dense_index is not None:
            return self.dense_index.rows(positions)
        return dense_vectors.rows(self.vectors, self.faiss_index, positions)


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
    sample_rows: tuple[SampleScores, SampleScores] | None = None
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

    def allowed(self, names: list[str] | None) -> tuple[Allowed | None, Allowed | None]:
        """What searches of the sentences and of the passages may return when these
        collections are asked (None: everything)."""
        mask = self.collection_mask(names)
        if mask is None or names is None:
            return None, None
        kept = tuple(sorted(set(names) & set(self.collections)))
        return (
            Allowed(kept, mask[self.sentences.article]),
            Allowed(kept, mask[self.passages.article]),
        )


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
    s_bm25, p_bm25 = indexes.sentences.bm25, indexes.passages.bm25
    assert s_bm25 is not None and p_bm25 is not None
    return (
        s_bm25.rows(sample),
        p_bm25.rows(indexes.sentence_passage[sample].astype(np.int64)),
    )


def sample_vectors(indexes: Indexes) -> tuple[np.ndarray, np.ndarray]:
    """The vectors of the stats sample's sentences and of their passages (`UnitIndex.rows`)."""
    sample = stats_sample(len(indexes.sentences.rowids))
    return (
        indexes.sentences.rows(sample),
        indexes.passages.rows(indexes.sentence_passage[sample].astype(np.int64)),
    )


def unit_document(title: str, text: str) -> str:
    """What the lexical index holds of a sentence or passage.

    Both carry their article's title (the topic): on ReQA title + sentence beats the
    sentence alone for BM25; inside one article the title words score every sentence
    alike, so the sentence that says the thing still outranks its neighbours.
    """
    return f"{title}\n{text}"


def _unit_from_store(
    store: StoreReads,
    table: Unit,
    article_pos: dict[str, int],
    *,
    local: bool = True,
    visit: Callable[[Unit, UnitRow], None] | None = None,
    spill: Spill | None = None,
) -> tuple[UnitIndex, list[tuple[str, int]]]:
    """One unit's tables; with `local` False, without its vectors and BM25 (searched in
    another engine, which `visit` sees every row for). With `spill`, a unit of at least
    SPILL_ROWS rows has its vectors and token vectors built into files there."""
    rowids, article, position, docs, keys, texts, spans = [], [], [], [], [], [], []
    dim = store.dim
    # Filled in place: a list of per-row byte strings joined at the end would hold every
    # vector twice, 15 GB at a million passages' five million sentences. The count and the
    # rows come from one snapshot (`build_indexes`), so they agree.
    total = store.unit_count(table)
    count = total if local else 0
    spill = spill if spill is not None and total >= SPILL_ROWS else None
    matrix = (
        np.empty((count, dim), dtype=np.float32)
        if spill is None or count == 0
        else spill.matrix(f"{table}.vectors.npy", count, dim, np.float32)
    )
    # Each row's token vectors are copied in once, not kept as objects (`TokenTableBuilder`).
    projection = store.token_projection() if table == "sentences" else None
    token_rows = None if projection is None else TokenTableBuilder(projection, spill)
    for row, unit_row in enumerate(store.iter_units(table)):
        rowid, article_id, _c, title, text, idx, vec, first, last, ids, toks = unit_row
        rowids.append(rowid)
        article.append(article_pos[article_id])
        position.append(idx)
        if visit is not None:
            visit(table, unit_row)
        if local:
            matrix[row] = np.frombuffer(vec, dtype=np.float32)
            docs.append(unit_document(title, text))
        keys.append((article_id, idx))
        if table == "sentences":
            texts.append(text)
            spans.append((first, last))
            if token_rows is not None:
                token_rows.add(None if ids is None or toks is None else (ids, toks))
    # A row whose vector is missing is not joined.
    matrix = shrink(matrix, len(rowids)) if isinstance(matrix, np.memmap) else matrix[: len(rowids)]
    unit = UnitIndex(
        rowids=np.asarray(rowids, dtype=np.int64),
        article=np.asarray(article, dtype=np.int32),
        position=np.asarray(position, dtype=np.int32),
        vectors=matrix,
        bm25=BM25.build(docs) if local else None,
        dense_info={"kind": dense_kind(len(rowids)), "n": len(rowids)},
    )
    if table == "sentences":
        span = np.asarray(spans, dtype=np.int32).reshape(-1, 2)
        unit.texts, unit.start, unit.end = TextTable.of(texts), span[:, 0].copy(), span[:, 1].copy()
        if token_rows is not None:
            unit.tokens = token_rows.build()
    return unit, keys


def build_indexes(store: Store, spill: Spill | None = None) -> Indexes:
    """Build every derived index from SQLite, from one snapshot of it: an ingest committing
    in another process between two of these reads made their rows disagree (a sentence of
    an article the articles' read had not seen: KeyError), and the generation recorded is
    the snapshot's own. `spill`: where the largest arrays are built (see `_unit_from_store`)."""
    with store.snapshot() as snapshot:
        return build_from_snapshot(snapshot, spill=spill)


def build_from_snapshot(
    store: StoreReads,
    *,
    local: bool = True,
    visit: Callable[[Unit, UnitRow], None] | None = None,
    spill: Spill | None = None,
) -> Indexes:
    """The indexes of one snapshot. With `local` False only the tables an answer reads
    (positions, texts, spans, token vectors, sources): the vectors and words are searched
    in another engine, which `visit` hands every unit row to (`qdrant.QdrantIndexes`)."""
    started = time.perf_counter()
    generation = store.generation
    rows = store.index_articles()
    article_ids = [r[0] for r in rows]
    article_pos = {a: i for i, a in enumerate(article_ids)}
    collections = sorted({r[1] for r in rows})
    coll_pos = {c: i for i, c in enumerate(collections)}
    sentences, sent_keys = _unit_from_store(
        store, "sentences", article_pos, local=local, visit=visit, spill=spill
    )
    passages, pass_keys = _unit_from_store(
        store, "passages", article_pos, local=local, visit=visit, spill=spill
    )
    # Each sentence's passage: passages are runs [first, last] of their article's sentences.
    pass_of: dict[tuple[str, int], int] = {}
    sentence_passage = np.zeros(len(sent_keys), dtype=np.int32)
    if sent_keys:
        spans = store.passage_spans()
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
    if local:
        indexes.sample_rows = sample_rows(indexes)
    log.info(
        "built indexes for %d sentences and %d passages in %.2fs",
        len(sentences.rowids),
        len(passages.rowids),
        time.perf_counter() - started,
    )
    return indexes
