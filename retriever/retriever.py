"""From a question to quoted sentences: the question's road, stage by stage.

    query (query.py: encoded and tokenised once)
      -> candidates (candidates.py: BM25 and dense search of sentences and passages)
      -> scoring (scoring.py: four signals as z-scores, and an absolute confidence)
      -> rerank (rerank.py: MaxSim over stored token vectors, for the best 30)
      -> answer (answer.py: abstain, collapse duplicates, context, citation)

all over one snapshot of the indexes per store generation (snapshot.py). `Retriever` wires
the stages and times them; each stage is a module of its own with its own tests.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from retriever.answer import abstains, choose
from retriever.candidates import gather
from retriever.conversation import Conversation, Folding, Reading, Turn, read_in_context
from retriever.models import Answer, Mode
from retriever.query import Query, check_question, encode_queries
from retriever.rerank import MaxSimReranker, Reranker
from retriever.scoring import Ranked, Scored, score_hybrid
from retriever.snapshot import Snapshot, Snapshots
from retriever.weights import Weights
from store.embedding import Embedder
from store.indexes.build import Indexes
from store.indexes.source import IndexSource
from store.seams import Store
from store.text.dedupe import same_words, words

__all__ = ["Ranked", "Retriever", "Weights"]

# How deep in a follow-up's ranking sentences already quoted are looked for.
SEEN_DEPTH = 20


class Retriever:
    """Answers questions from one store. Thread-safe for concurrent `ask` calls."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        index_dir: Path,
        *,
        weights: Weights | None = None,
        reranker: Reranker | None = None,
        sentence_depth: int = 100,
        passage_depth: int = 30,
        search: IndexSource | None = None,
        folding: Folding | None = None,
    ) -> None:
        """`search`: where the indexes live and are searched (None: built and saved in
        `index_dir`, searched here; `store.indexes.qdrant.QdrantIndexes`: in Qdrant)."""
        self.weights = weights or Weights()
        self.folding = folding or Folding()
        self.reranker = reranker or MaxSimReranker(self.weights)
        self.sentence_depth = sentence_depth
        self.passage_depth = passage_depth
        self.snapshots = Snapshots(store, embedder, index_dir, search)

    @property
    def store(self) -> Store:
        return self.snapshots.store

    @property
    def embedder(self) -> Embedder:
        return self.snapshots.embedder

    def keep_resident(self) -> None:
        """For a process that stays up: read the indexes into memory in the background each
        time they are loaded (see `store.indexes.saved.make_resident`); questions go on
        meanwhile."""
        self.snapshots.keep_resident()

    def wait_resident(self, timeout: float | None = None) -> bool:
        """Wait for a background read started by `keep_resident`; whether none is running."""
        return self.snapshots.wait_resident(timeout)

    def indexes(self) -> Indexes:
        """The indexes for the store as it is now (rebuilt after any ingest or forget)."""
        return self.snapshots.current().indexes

    # -- asking -------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        *,
        k: int = 3,
        mode: Mode = "hybrid",
        collections: list[str] | None = None,
        abstain_below: float | None = None,
        history: Conversation | None = None,
    ) -> Answer:
        """The top `k` answering sentences, or an abstention when nothing answers.

        `abstain_below` replaces the weights' abstention line for this question (a
        `qabot ask` answered by a `qabot serve` started with another QABOT_ABSTAIN).
        `history`: the conversation so far; a question that leans on it (see
        retriever/conversation.py) is read in its light, and the answer names the turns
        it leaned on. A question that stands alone is answered as without history."""
        started = time.perf_counter()
        question = check_question(question)
        reading = read_in_context(question, history, self.folding)
        with self.snapshots.answering():
            snapshot = self.snapshots.current()
            t1 = time.perf_counter()
            ranked, reading, embed = self._rank_reading(snapshot, reading, mode, collections)
            t2 = time.perf_counter()
            with _one_blas_thread():
                answers = choose(
                    snapshot,
                    ranked,
                    k,
                    self._threshold(mode, abstain_below),
                    self.weights.relative_floor,
                )
            t3 = time.perf_counter()
        timings = {
            "embed": embed * 1000,
            "search": (t2 - t1 - embed) * 1000,
            "select": (t3 - t2) * 1000,
            "total": (t3 - started) * 1000,
        }
        return Answer(
            question=question,
            abstained=not answers,
            answers=tuple(answers),
            timings=timings,
            mode=mode,
            understood=reading.text if reading.text != question else None,
            context_used=reading.context_used,
        )

    def converse(
        self, questions: list[str], *, history: Conversation | None = None, **ask: Any
    ) -> tuple[list[Answer], Conversation]:
        """Ask these questions in order, each in the light of the ones before (and of
        `history`), as a person chatting would; the answers and the conversation after."""
        conversation = history or Conversation()
        answers = []
        for q in questions:
            answer = self.ask(q, history=conversation, **ask)
            answers.append(answer)
            conversation = conversation.then(answer)
        return answers, conversation

    def resume(self, items: list[str | Turn], **ask: Any) -> Conversation:
        """The conversation these earlier turns make: a turn is kept as given, a bare
        question is asked again (in the light of the ones before it)."""
        conversation = Conversation()
        for item in items:
            if isinstance(item, str):
                item = Turn.of(self.ask(item, history=conversation, **ask))
            conversation = Conversation(turns=(*conversation.turns, item))
        return conversation

    def rank_in_context(
        self,
        question: str,
        history: Conversation | None,
        *,
        mode: Mode = "hybrid",
        depth: int = 10,
        collections: list[str] | None = None,
    ) -> tuple[Ranked, Reading]:
        """The ranking `ask` makes of a question after these turns, and how it read it
        (evaluation)."""
        reading = read_in_context(check_question(question), history, self.folding)
        snapshot = self.snapshots.current()
        ranked, reading, _ = self._rank_reading(snapshot, reading, mode, collections)
        assert ranked.confidence is not None
        return (
            Ranked(ranked.positions[:depth], ranked.scores[:depth], ranked.confidence[:depth]),
            reading,
        )

    def rank(
        self,
        questions: list[str],
        *,
        mode: Mode = "hybrid",
        depth: int = 10,
        collections: list[str] | None = None,
    ) -> list[Ranked]:
        """Ranked sentence positions for many questions at once (evaluation).

        Embeds the questions in one batch; the ranking is the one `ask` uses.
        """
        snapshot = self.snapshots.current()
        out = []
        for query in encode_queries(snapshot.indexes, self.embedder, questions, mode):
            ranked = self._rank(snapshot, query, mode, collections)
            assert ranked.confidence is not None
            out.append(
                Ranked(ranked.positions[:depth], ranked.scores[:depth], ranked.confidence[:depth])
            )
        return out

    def abstains(
        self, ranked: Ranked, mode: Mode = "hybrid", abstain_below: float | None = None
    ) -> bool:
        """Whether `ask` would answer nothing for this ranking."""
        return abstains(ranked, self._threshold(mode, abstain_below))

    def sentence_rowids(self, positions: np.ndarray) -> np.ndarray:
        """SQLite row ids of sentences at these index positions."""
        return self.indexes().sentences.rowids[positions]

    def sentence_texts(self, positions: np.ndarray) -> list[str]:
        """The text of the sentences at these index positions, in order."""
        rows = self.snapshots.current().sentence_rows([int(p) for p in positions])
        return [rows[int(p)].text for p in positions]

    def _rank(
        self,
        snapshot: Snapshot,
        query: Query,
        mode: Mode,
        collections: list[str] | None,
        reading: Reading | None = None,
    ) -> Ranked:
        if len(snapshot.indexes.sentences.rowids) == 0:
            return Ranked.empty()
        cands = gather(
            snapshot,
            query,
            mode,
            collections,
            sentence_depth=self.sentence_depth,
            passage_depth=self.passage_depth,
        )
        if len(cands) == 0:
            return Ranked.empty()
        if mode == "bm25":
            assert cands.sentence_bm25 is not None
            score = cands.sentence_bm25
            return Ranked.of(cands.positions, score, score / query.sentence_bm25_max)
        if mode == "dense":
            assert cands.sentence_dense is not None
            return Ranked.of(cands.positions, cands.sentence_dense, cands.sentence_dense)
        scored = score_hybrid(cands, query, snapshot.population, self.weights)
        if not self.reranker.rerank(snapshot, query, scored):
            # No token vectors (a store from before them): the line calibrated without.
            scored.confidence -= self.weights.plain_confidence_margin
        if reading is None or not reading.prior:
            return scored.ranked()
        self._lean_on(snapshot, scored, reading)
        ranked = scored.ranked()
        if self.folding.seen_penalty and reading.seen:
            ranked = self._not_again(snapshot, ranked, reading)
        return ranked

    def _rank_reading(
        self,
        snapshot: Snapshot,
        reading: Reading,
        mode: Mode,
        collections: list[str] | None,
    ) -> tuple[Ranked, Reading, float]:
        """The ranking for a question as read, the reading kept, and the seconds spent
        encoding.

        The first reading (the most salient name) is ranked first. The others (the next
        names, `reading.others`, and where the reading is unsure the question as asked) are
        encoded and ranked only when its best sentence is less confident than
        `Folding.others_below`: then the most confident of the names wins, and it is kept
        over the question as asked only when the more confident by `Folding.keep_margin`."""
        texts = _texts(reading)
        t = time.perf_counter()
        queries = encode_queries(snapshot.indexes, self.embedder, texts[:1], mode)
        embed = time.perf_counter() - t
        with _one_blas_thread():
            ranked = self._rank(snapshot, queries[0], mode, collections, reading)
        if len(texts) == 1 or (
            ranked.scores.size and _confidence(ranked) >= self.folding.others_below
        ):
            return ranked, replace(reading, others=()), embed
        t = time.perf_counter()
        queries += encode_queries(snapshot.indexes, self.embedder, texts[1:], mode)
        embed += time.perf_counter() - t
        with _one_blas_thread():
            # The other folded readings (the next most salient names): the most confident wins.
            for text, query in zip(
                reading.others, queries[1 : 1 + len(reading.others)], strict=True
            ):
                other = self._rank(snapshot, query, mode, collections, reading)
                if other.scores.size and (
                    ranked.scores.size == 0 or _confidence(other) > _confidence(ranked)
                ):
                    ranked, reading = other, replace(reading, text=text)
            if len(queries) == 1 + len(reading.others):
                return ranked, replace(reading, others=()), embed
            # The question as asked, still leaning on the conversation's articles or not.
            plain = (
                replace(reading, text=reading.asked, others=())
                if self.folding.unsure_prior
                else Reading(reading.asked)
            )
            alone = self._rank(snapshot, queries[-1], mode, collections, plain)
        if alone.scores.size == 0 or (
            ranked.scores.size
            and _confidence(ranked) >= _confidence(alone) + self.folding.keep_margin
        ):
            return ranked, replace(reading, others=()), embed
        return alone, plain, embed

    def _lean_on(self, snapshot: Snapshot, scored: Scored, reading: Reading) -> None:
        """Sentences of the articles the conversation's answers quoted score higher, by
        each article's prior (fading with each turn back)."""
        idx = snapshot.indexes
        weight = np.zeros(len(idx.article_ids), dtype=np.float32)
        for article_id, w in reading.prior.items():
            at = idx.article_position.get(article_id)
            if at is not None:
                weight[at] = w
        boost = weight[idx.sentences.article[scored.candidates.positions]]
        scored.score += self.folding.prior_score * boost
        scored.confidence += self.folding.prior_confidence * boost

    def _not_again(self, snapshot: Snapshot, ranked: Ranked, reading: Reading) -> Ranked:
        """The ranking with the sentences the conversation already quoted (or the same
        words printed again) moved down by `Folding.seen_penalty`: a follow-up asks for
        something new."""
        depth = min(SEEN_DEPTH, ranked.positions.size)
        if not depth:
            return ranked
        seen = [words(t) for t in reading.seen]
        top = [int(p) for p in ranked.positions[:depth]]
        rows = snapshot.sentence_rows(top)
        again = np.zeros(ranked.positions.size, dtype=bool)
        for i, p in enumerate(top):
            tokens = words(rows[p].text)
            again[i] = any(same_words(tokens, w) for w in seen)
        if not again.any():
            return ranked
        assert ranked.confidence is not None
        return Ranked.of(
            ranked.positions,
            ranked.scores - self.folding.seen_penalty * again,
            ranked.confidence,
        )

    def _threshold(self, mode: Mode, abstain_below: float | None = None) -> float:
        if mode != "hybrid":
            return 0.0
        return self.weights.abstain_below if abstain_below is None else abstain_below


def _texts(reading: Reading) -> list[str]:
    """What to encode: the question as read (and its other folded readings), and as asked
    when the reading is unsure."""
    texts = [reading.text, *reading.others]
    if reading.folded and not reading.sure:
        texts.append(reading.asked)
    return texts


def _confidence(ranked: Ranked) -> float:
    """The confidence of a ranking's best sentence (what abstention reads)."""
    assert ranked.confidence is not None
    return float(ranked.confidence[0])


_BLAS: Any = None


def _one_blas_thread() -> Any:
    """numpy's BLAS on one thread while a question's candidates are searched and scored
    (the encode before it keeps both).

    The search's products are small (a few thousand rows): on two threads their start-up
    and spinning cost more than they share (10k passages: 10 ms against 4.5 ms), and where
    torch encodes questions (another model) the spinning threads slowed its next encode
    (1M: ask p95 100 ms against 40 ms). Entering and leaving costs ~20 us.
    """
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")
