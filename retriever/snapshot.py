"""One generation of the indexes, and what the question's road derives from it once.

Every write to the store starts a new generation; a `Snapshot` is built for it the first
time a question meets it, and everything computed from the indexes (passage members, the
z-scores' sample, cited sources, titles' word pieces) lives on it, so nothing is cached by
comparing indexes by identity and nothing is passed along beside the indexes.
`Snapshots` keeps the current one and, in a process that stays up, reads its files into
memory behind the questions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from retriever.models import Source
from retriever.population import Population
from store.embedding import Embedder
from store.errors import StoreUnavailableError
from store.indexes.build import Indexes
from store.indexes.saved import LocalIndexes, make_resident
from store.indexes.source import IndexSource
from store.models import embed_title
from store.seams import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SentenceRow:
    """What an answer needs of one sentence, from the text table saved with the indexes."""

    pos: int  # position in the index order
    article_id: str
    index: int  # the sentence's index in its article
    start: int
    end: int
    text: str


class Snapshot:
    """The indexes of one store generation and what is derived from them, once."""

    def __init__(self, indexes: Indexes, embedder: Embedder) -> None:
        self.indexes = indexes
        self.embedder = embedder
        self._sources: dict[str, Source] = {}
        self._titles: dict[int, frozenset[int]] = {}

    @property
    def generation(self) -> int:
        return self.indexes.generation

    @cached_property
    def _member_order(self) -> tuple[np.ndarray, np.ndarray]:
        idx = self.indexes
        order = np.argsort(idx.sentence_passage, kind="stable")
        bounds = np.zeros(len(idx.passages.rowids) + 1, dtype=np.int64)
        np.cumsum(
            np.bincount(idx.sentence_passage, minlength=len(idx.passages.rowids)),
            out=bounds[1:],
        )
        return order, bounds

    def members(self, passages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sentence positions of these passages, without a pass over every sentence, and
        how many each passage has (its members come in that order)."""
        order, bounds = self._member_order
        counts = bounds[passages + 1] - bounds[passages]
        if passages.size == 0:
            return np.zeros(0, dtype=np.int64), counts
        found = [order[bounds[p] : bounds[p + 1]] for p in passages.tolist()]
        return np.concatenate(found), counts

    @cached_property
    def population(self) -> Population:
        """The fixed sample of the store the z-scores are taken against (computed once per
        generation: gathering it per question cost ~2 ms at 45k sentences, ~6 ms at 4.5M)."""
        return Population.of(self.indexes)

    def sources(self, article_ids: set[str]) -> dict[str, Source]:
        """The sources of these articles, from the table saved with the indexes, each read
        once per generation."""
        known = self._sources
        missing = [a for a in article_ids if a not in known]
        if missing:
            idx = self.indexes
            assert idx.article_sources is not None
            saved = idx.article_sources.get([idx.article_position[a] for a in missing])
            for article_id, fields in zip(missing, saved, strict=True):
                title, publisher, url, published, source = json.loads(fields)
                known[article_id] = Source(
                    id=article_id,
                    title=title,
                    publisher=publisher,
                    url=url,
                    published=published,
                    source=source,
                )
        return {a: known[a] for a in article_ids}

    def title_pieces(self, articles: np.ndarray) -> dict[int, frozenset[int]]:
        """The word piece ids of these articles' titles (as embedded), by article position,
        each tokenised once per generation."""
        known = self._titles
        missing = sorted({int(a) for a in articles.tolist()} - known.keys())
        if missing:
            ids = self.indexes.article_ids
            sources = self.sources({ids[a] for a in missing})
            titles = [embed_title(sources[ids[a]].title) for a in missing]
            pieces = self.embedder.piece_ids(titles)
            known.update((a, frozenset(p.tolist())) for a, p in zip(missing, pieces, strict=True))
        return known

    def sentence_rows(self, positions: list[int]) -> dict[int, SentenceRow]:
        """What answers need of these sentences, from the indexes' text table (no SQLite)."""
        idx = self.indexes
        sents = idx.sentences
        assert sents.texts is not None and sents.start is not None and sents.end is not None
        at = np.asarray(positions, dtype=np.int64)
        columns = zip(
            positions,
            sents.article[at].tolist(),
            sents.position[at].tolist(),
            sents.start[at].tolist(),
            sents.end[at].tolist(),
            sents.texts.get(positions),
            strict=True,
        )
        return {
            pos: SentenceRow(pos, idx.article_ids[article], i, start, end, text)
            for pos, article, i, start, end, text in columns
        }

    def sentence_before(self, row: SentenceRow) -> str | None:
        """The sentence before this one when both sit in the same passage."""
        if row.index == 0:
            return None
        pos = row.pos
        sents, of_passage = self.indexes.sentences, self.indexes.sentence_passage
        # Sentences are in article order, so the one before sits at the position before.
        same_passage = (
            sents.article[pos - 1] == sents.article[pos]
            and sents.position[pos - 1] == row.index - 1
            and of_passage[pos - 1] == of_passage[pos]
        )
        if not same_passage:
            return None
        assert sents.texts is not None
        return sents.texts.get([pos - 1])[0]

    def warm_titles(self, pause: Callable[[], None]) -> None:
        """Every title's word pieces, which reranking looks up per candidate (a question
        meeting five new articles tokenised them itself, ~0.25 ms)."""
        count = len(self.indexes.article_ids)
        for start in range(0, count, 2048):
            pause()
            self.title_pieces(np.arange(start, min(start + 2048, count)))


class Snapshots:
    """The snapshot for the store as it is now, rebuilt after any ingest or forget.

    In a process that stays up (`keep_resident`), each new snapshot's files are read into
    memory in the background, pausing while questions are being answered."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        index_dir: Path,
        source: IndexSource | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.index_dir = index_dir
        # Where each generation's indexes come from: the data folder, or Qdrant.
        self.source: IndexSource = source or LocalIndexes()
        self._current: Snapshot | None = None
        self._lock = threading.Lock()
        self._resident = False
        self._reading: threading.Thread | None = None
        self._asking = 0  # questions being answered now (a background read waits for them)
        self._lock_asking = threading.Lock()

    def current(self) -> Snapshot:
        """The snapshot of the store's generation now.

        When one is loaded already and the new one cannot be read or built, or the store
        cannot be asked its generation (a database server that is down), the question is
        answered from the one loaded, and the next question tries again."""
        try:
            generation = self.store.generation
        except StoreUnavailableError as exc:
            if self._current is None:
                raise
            log.warning(
                "answering from the indexes of change %d: %s", self._current.generation, exc
            )
            return self._current
        snapshot = self._current
        if snapshot is not None and snapshot.generation == generation:
            return snapshot
        with self._lock:
            if self._current is None or self._current.generation != generation:
                try:
                    indexes = self.source.open(self.store, self.index_dir)
                except Exception as exc:
                    if self._current is None:
                        raise
                    log.warning(
                        "answering from the indexes of change %d: those of change %d failed "
                        "(%s: %s)",
                        self._current.generation,
                        generation,
                        type(exc).__name__,
                        exc,
                    )
                    return self._current
                self._current = Snapshot(indexes, self.embedder)
                if self._resident:
                    self._read_in(self._current)
            return self._current

    def keep_resident(self) -> None:
        """Read each snapshot's indexes into memory in the background (see
        `store.indexes.saved.make_resident`); questions go on meanwhile."""
        snapshot = self.current()
        self._resident = True
        self._read_in(snapshot)

    def wait_resident(self, timeout: float | None = None) -> bool:
        """Wait for a background read started by `keep_resident`; whether none is running."""
        reading = self._reading
        if reading is not None:
            reading.join(timeout)
        return reading is None or not reading.is_alive()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Marks a question being answered, so that a background read holds off."""
        with self._lock_asking:
            self._asking += 1
        try:
            yield
        finally:
            with self._lock_asking:
                self._asking -= 1

    def _pause(self, longest: float = 0.05) -> None:
        """Hold a background read while questions are being answered (at most `longest`
        seconds, so that a steady stream of questions still lets it finish)."""
        until = time.perf_counter() + longest
        while self._asking and time.perf_counter() < until:
            time.sleep(0.002)

    def _read_in(self, snapshot: Snapshot) -> None:
        indexes = snapshot.indexes
        if indexes.mapped_from is None:
            return

        def run() -> None:
            try:
                make_resident(indexes, self._pause)
            except (OSError, ValueError, RuntimeError) as exc:  # e.g. replaced by a rebuild
                log.warning("indexes stay memory-mapped: %s", exc)
            if indexes.sentences.tokens is not None:
                snapshot.warm_titles(self._pause)

        self._reading = threading.Thread(target=run, name="qabot-read-indexes", daemon=True)
        self._reading.start()
