"""Measurements for `qabot bench`: each figure next to the model work it cannot avoid.

These machines are noisy and absolute times drift, so every timing is taken side by side
with a bare `encode` of the same texts in the same process, and reported as a ratio:
- ingest: the whole ingest (clean, split, pack, embed, store, build and save the indexes)
  over bare `encode` calls on exactly the texts the ingest embedded, at the same batch size,
  each made right after the ingest's own call (see RecordingEmbedder);
- ask: the median of `Retriever.ask` over the median bare encode of the same questions,
  the two interleaved block by block so drift hits both alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from retriever.models import Answer
from retriever.retriever import Retriever
from store.embedding import Embedder
from store.errors import SkipSource
from store.indexes.saved import open_indexes
from store.indexes.tokens import Encoded
from store.ingest import Ingestor
from store.models import RawArticle

log = logging.getLogger(__name__)
T = TypeVar("T")


class RecordingEmbedder:
    """An embedder that passes through to another, timing each call and following it at
    once with a bare call on the same texts (the "shadow"), timed apart.

    Interleaving the two, call by call, is what keeps the ingest ratio honest on a machine
    whose speed drifts: measured one after the other (a whole ingest, then one bare encode
    of everything) the same 12k texts took 256 s inside the ingest and 358 s bare.
    """

    def __init__(self, inner: Embedder, *, shadow: bool = True) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.max_tokens = inner.max_tokens
        self.shadow = shadow
        self.texts = 0
        self.calls = 0
        self.seconds = 0.0  # inside the ingest's own encode calls
        self.shadow_seconds = 0.0  # the bare calls on the same texts

    def encode_documents(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self._timed(texts, batch_size, self.inner.encode_documents)

    def encode_sentences(self, texts: list[str], batch_size: int = 64) -> Encoded:
        # Against a bare `encode_documents`: what keeping the token vectors costs counts as
        # the ingest's.
        return self._timed(texts, batch_size, self.inner.encode_sentences)

    def _timed(self, texts: list[str], batch_size: int, call: Callable[..., T]) -> T:
        # The shadow goes first on every other call, so neither side always runs warmer.
        shadow_first = self.shadow and bool(texts) and self.calls % 2 == 1
        if shadow_first:
            self.shadow_seconds += self._bare(texts, batch_size)
        started = time.perf_counter()
        out = call(texts, batch_size=batch_size)
        self.seconds += time.perf_counter() - started
        if self.shadow and texts and not shadow_first:
            self.shadow_seconds += self._bare(texts, batch_size)
        self.texts += len(texts)
        self.calls += 1
        return out

    def _bare(self, texts: list[str], batch_size: int) -> float:
        started = time.perf_counter()
        self.inner.encode_documents(list(texts), batch_size=batch_size)
        return time.perf_counter() - started

    def encode_query(self, texts: list[str]) -> Encoded:
        return self.inner.encode_query(texts)  # an ingest asks nothing: not timed

    def count_tokens(self, texts: list[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def piece_ids(self, texts: list[str]) -> list[np.ndarray]:
        return self.inner.piece_ids(texts)


@dataclass
class IngestFigures:
    seconds: float  # ingest + index build and save, wall time, the shadow calls taken out
    encode_seconds: float  # bare encodes of the same texts, same calls, same batch size
    encode_inside_seconds: float  # time the ingest spent inside encode
    articles: int
    sentences: int
    passages: int
    embedded: int
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.seconds / max(self.encode_seconds, 1e-9)


def measure_ingest(
    ingestor: Ingestor,
    recorder: RecordingEmbedder,
    items: Iterable[RawArticle | SkipSource],
    index_dir: Path,
) -> IngestFigures:
    """Ingest `items` with `ingestor` (into a fresh store, embedding through `recorder`), then
    build and save its indexes in `index_dir`; each embedding call is followed by a bare one
    on the same texts, timed apart."""
    recorder.inner.encode_documents(["warm up the model's threads"], ingestor.batch_size)
    started = time.perf_counter()
    report = ingestor.ingest(items)
    ingested = time.perf_counter()
    open_indexes(ingestor.store, index_dir)
    wall = time.perf_counter() - started
    indexing = time.perf_counter() - ingested
    return IngestFigures(
        seconds=wall - recorder.shadow_seconds,
        encode_seconds=recorder.shadow_seconds,
        encode_inside_seconds=recorder.seconds,
        articles=len(report.added) + len(report.updated),
        sentences=report.sentences,
        passages=report.passages,
        embedded=report.embedded,
        extra={"index_s": indexing, "texts_encoded": recorder.texts},
    )


@dataclass
class AskFigures:
    ask_ms: list[float]
    encode_ms: list[float]  # the library's encode (`SentenceTransformer.encode`) of the question
    own_encode_ms: list[float]  # the embedder's own encode, the one `ask` makes
    answered: int

    @property
    def p50(self) -> float:
        return float(np.median(self.ask_ms))

    @property
    def p95(self) -> float:
        return float(np.percentile(self.ask_ms, 95))

    @property
    def encode_p50(self) -> float:
        return float(np.median(self.encode_ms))

    @property
    def own_encode_p50(self) -> float:
        return float(np.median(self.own_encode_ms))

    @property
    def ratio(self) -> float:
        """The ask over a bare `model.encode` of the same question (the issue's measure)."""
        return self.p50 / max(self.encode_p50, 1e-9)

    @property
    def strict_ratio(self) -> float:
        """The ask over the encode it makes itself: what the rest of the path costs."""
        return self.p50 / max(self.own_encode_p50, 1e-9)


# Questions timed in a row by one runtime before the next takes over (see `measure_asks`).
ASK_BLOCK = 20


def measure_asks(retriever: Retriever, model: Embedder, questions: list[str]) -> AskFigures:
    """Time `ask`, a bare library encode and the ask's own encode of the same questions,
    block by block: ASK_BLOCK questions asked, then the same ones bare-encoded by the
    library, then by the ask's own embedder, and on to the next block, so drift hits all
    three alike.

    The library encode is `SentenceTransformer.encode` on `model` where it has one
    (`library_encode`); the ask's own encode is `retriever.embedder`'s (for the bundled model
    its numpy runtime). Blocks, not turns per question: torch's and numpy's BLAS each keep
    their threads spinning for a while after a call, and alternated call by call on two
    cores the two runtimes slowed each other (torch's encode 54 ms instead of 13). Each
    block starts with one uncounted call, which waits out the other runtime's spinning; the
    first few asks warm caches (index pages, SQLite) and are not counted either.
    """
    bare = getattr(model, "library_encode", model.encode_documents)
    own = retriever.embedder.encode_query
    for q in questions[:5]:
        retriever.ask(q)
    ask_ms: list[float] = []
    encode_ms: list[float] = []
    own_ms: list[float] = []
    answered = 0
    for lo in range(0, len(questions), ASK_BLOCK):
        block = questions[lo : lo + ASK_BLOCK]
        retriever.ask(block[0])
        for q in block:
            t = time.perf_counter()
            answer = retriever.ask(q)
            ask_ms.append((time.perf_counter() - t) * 1000)
            answered += not answer.abstained
        for encode, times in ((bare, encode_ms), (own, own_ms)):
            encode([block[0]])
            for q in block:
                t = time.perf_counter()
                encode([q])
                times.append((time.perf_counter() - t) * 1000)
    return AskFigures(ask_ms, encode_ms, own_ms, answered)


def timed(func: Callable[[], object]) -> float:
    """Seconds `func()` takes."""
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


@dataclass
class SideBySide:
    """Asks of the same questions by several retrievers of one store, in one process."""

    ask_ms: dict[str, list[float]]
    answers: dict[str, list[Answer]]

    def p50(self, name: str) -> float:
        return float(np.median(self.ask_ms[name]))

    def p95(self, name: str) -> float:
        return float(np.percentile(self.ask_ms[name], 95))

    def agreement(self, a: str, b: str) -> tuple[float, float]:
        """Shares of the questions where `a` and `b` quote the same sentences (in order),
        and where their first quotes (or abstentions) are the same."""
        same = top = 0
        for x, y in zip(self.answers[a], self.answers[b], strict=True):
            tx, ty = [s.text for s in x.answers], [s.text for s in y.answers]
            same += x.abstained == y.abstained and tx == ty
            top += x.abstained == y.abstained and tx[:1] == ty[:1]
        n = max(len(self.answers[a]), 1)
        return same / n, top / n


def measure_side_by_side(retrievers: dict[str, Retriever], questions: list[str]) -> SideBySide:
    """Time `ask` of the same questions on each retriever, block by block (ASK_BLOCK
    questions on one, then the same on the next), the order turned round every block, so
    the machine's drift and whatever runs warmer after the other hit each alike. The first
    few asks of each warm caches and are not counted."""
    names = list(retrievers)
    for name in names:
        for q in questions[:5]:
            retrievers[name].ask(q)
    ask_ms: dict[str, list[float]] = {n: [] for n in names}
    answers: dict[str, list[Answer]] = {n: [] for n in names}
    for b, lo in enumerate(range(0, len(questions), ASK_BLOCK)):
        block = questions[lo : lo + ASK_BLOCK]
        for name in names if b % 2 == 0 else names[::-1]:
            retriever = retrievers[name]
            for q in block:
                t = time.perf_counter()
                answer = retriever.ask(q)
                ask_ms[name].append((time.perf_counter() - t) * 1000)
                answers[name].append(answer)
    return SideBySide(ask_ms, answers)
