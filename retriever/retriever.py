"""From a question to quoted sentences: hybrid search, sentence choice, dedup, abstention.

Candidates are the best sentences by BM25 and by the dense model, plus every sentence of
the best passages by either. Each candidate is scored by four signals: the question's
cosine similarity to the sentence and to its passage (MiniLM; both embedded under the
article's title), and BM25 of the sentence and of its passage (title included). Ranking
sums their z-scores against the whole store; then the best 30 are reranked by late
interaction (MaxSim of the question's word pieces against the sentence's and its passage's,
from token vectors stored at ingest: store/tokens.py). Abstention uses an absolute mix of
the same signals (cosines, BM25 over the best score the question's words could reach, and
the MaxSims).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retriever.errors import BadQuestionError
from retriever.models import ABSTAIN_LEVELS, Answer, AnswerSentence, Mode, Source
from store.bm25 import Rows
from store.clean import same_words, words
from store.db import Store
from store.embedding import Embedder
from store.index import (
    Indexes,
    make_resident,
    open_indexes,
    sample_rows,
    sample_vectors,
    stats_sample,
)
from store.tokens import QuestionTokens, TokenTable

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 1000
# A sentence that opens like this leans on the one before it to make sense.
_LEANS_BACK = re.compile(
    r"^(?:he|she|it|they|his|her|its|their|them|this|that|these|those|there|such|"
    r"but|however|also|then|thus|therefore|meanwhile|moreover|instead|still|yet|"
    r"the (?:carrier|company|group|move|decision|plan|report|general|president|minister))\b",
    re.I,
)


@dataclass(frozen=True)
class Weights:
    """How the signals mix. Ranking weights were tuned on the ReQA even split only.

    Ranking mixes z-scores (each signal minus its mean over the store's sentences, over its
    spread), so a signal that separates this question's sentences well counts for more than
    one that scores everything alike. Abstention needs an absolute scale instead: the
    `confidence_*` weights mix raw cosines and BM25 divided by the best score the
    question's words could reach.
    """

    sentence_dense: float = 1.0
    passage_dense: float = 0.4
    sentence_bm25: float = 0.27
    passage_bm25: float = 0.4
    confidence_sentence_dense: float = 1.0
    confidence_passage_dense: float = 0.45
    confidence_sentence_bm25: float = 0.75
    confidence_passage_bm25: float = 0.35
    # Confidence lost per unit of the question the store has never seen (the IDF-weighted
    # share of its words no article holds): a question about Jupiter put to articles that
    # never name it. Tuned with the threshold below, on the even halves.
    unknown_words_penalty: float = 0.5
    # Below this confidence nothing is quoted. Calibrated on the ReQA even split (2.5% of its
    # questions abstain) and the even lines of samples/unanswerable.jsonl; see the README.
    # QABOT_ABSTAIN sets another.
    abstain_below: float = ABSTAIN_LEVELS["balanced"]
    # How much more confidence a ranking without token vectors (`confidence_tokens`) needs,
    # calibrated alike (its line was 0.69): subtracted from its confidences, so that one line
    # serves both and moves for both.
    plain_confidence_margin: float = 0.04
    # Further answers must reach at least this fraction of the first one's confidence.
    relative_floor: float = 0.8
    # The best `token_depth` candidates by the mix above are reranked by late interaction
    # (store/tokens.py): MaxSim of the question against the sentence, and against all of
    # its passage's sentences, each on a 0-1 scale, added with these weights.
    token_depth: int = 30
    sentence_tokens: float = 40.0
    passage_tokens: float = 30.0
    # Abstention's confidence is (the mix above + this x the two MaxSims' mean) / (1 +
    # this): at 2.5% of the even split's questions abstaining, 2 abstains on 71% of the
    # even lines of samples/unanswerable.jsonl, 0 on 64% (1: 68%, 3: 73%, flat past 2).
    confidence_tokens: float = 2.0


@dataclass
class Ranked:
    """Sentence positions (in the index order) with their scores, best first.

    `confidence` holds each one's absolute confidence (what abstention and the answer's
    `score` use); for the single-signal modes it is the score itself.
    """

    positions: np.ndarray
    scores: np.ndarray
    confidence: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.confidence is None:
            self.confidence = self.scores


class Retriever:
    """Answers questions from one store. Thread-safe for concurrent `ask` calls."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        index_dir: Path,
        *,
        weights: Weights | None = None,
        sentence_depth: int = 100,
        passage_depth: int = 30,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.index_dir = index_dir
        self.weights = weights or Weights()
        self.sentence_depth = sentence_depth
        self.passage_depth = passage_depth
        self._indexes: Indexes | None = None
        self._lock = threading.Lock()
        self._passage_members: tuple[Indexes, np.ndarray, np.ndarray] | None = None
        self._population: tuple[Indexes, _Population] | None = None
        # Article metadata already read, for the index generation it was read under.
        self._known_sources: tuple[Indexes, dict[str, Source]] | None = None
        self._known_titles: tuple[Indexes, dict[int, frozenset[int]]] | None = None
        self._resident = False
        self._reading: threading.Thread | None = None
        self._asking = 0  # questions being answered now (a background read waits for them)
        self._lock_asking = threading.Lock()

    def keep_resident(self) -> None:
        """For a process that stays up: read the indexes into memory in the background each
        time they are loaded (see `store.index.make_resident`); questions go on meanwhile."""
        indexes = self.indexes()
        self._resident = True
        self._read_in(indexes)

    def _pause(self, longest: float = 0.05) -> None:
        """Hold a background read while questions are being answered (at most `longest`
        seconds, so that a steady stream of questions still lets it finish)."""
        until = time.perf_counter() + longest
        while self._asking and time.perf_counter() < until:
            time.sleep(0.002)

    @contextlib.contextmanager
    def _answering(self) -> Iterator[None]:
        with self._lock_asking:
            self._asking += 1
        try:
            yield
        finally:
            with self._lock_asking:
                self._asking -= 1

    def wait_resident(self, timeout: float | None = None) -> bool:
        """Wait for a background read started by `keep_resident`; whether none is running."""
        reading = self._reading
        if reading is not None:
            reading.join(timeout)
        return reading is None or not reading.is_alive()

    # -- indexes ------------------------------------------------------------------------

    def indexes(self) -> Indexes:
        """The indexes for the store as it is now (rebuilt after any ingest or forget).

        When indexes are loaded already and the new ones cannot be read or built (say, an
        ingest committing in another process while they are read), the question is answered
        from the ones loaded, and the next question tries again."""
        generation = self.store.generation
        current = self._indexes
        if current is not None and current.generation == generation:
            return current
        with self._lock:
            if self._indexes is None or self._indexes.generation != generation:
                try:
                    fresh = open_indexes(self.store, self.index_dir)
                except Exception as exc:
                    if self._indexes is None:
                        raise
                    log.warning(
                        "answering from the indexes of change %d: those of change %d failed "
                        "(%s: %s)",
                        self._indexes.generation,
                        generation,
                        type(exc).__name__,
                        exc,
                    )
                    return self._indexes
                self._indexes = fresh
                if self._resident:
                    self._read_in(self._indexes)
            return self._indexes

    def _read_in(self, indexes: Indexes) -> None:
        if indexes.mapped_from is None:
            return

        def run() -> None:
            try:
                make_resident(indexes, self._pause)
            except (OSError, ValueError, RuntimeError) as exc:  # e.g. replaced by a rebuild
                log.warning("indexes stay memory-mapped: %s", exc)
            # Then every title's word pieces, which reranking looks up per candidate (a
            # question meeting five new articles tokenised them itself, ~0.25 ms).
            if indexes.sentences.tokens is not None:
                for start in range(0, len(indexes.article_ids), 2048):
                    self._pause()
                    end = min(start + 2048, len(indexes.article_ids))
                    self._title_pieces(indexes, np.arange(start, end))

        self._reading = threading.Thread(target=run, name="qabot-read-indexes", daemon=True)
        self._reading.start()

    # -- asking -------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        *,
        k: int = 3,
        mode: Mode = "hybrid",
        collections: list[str] | None = None,
        abstain_below: float | None = None,
    ) -> Answer:
        """The top `k` answering sentences, or an abstention when nothing answers.

        `abstain_below` replaces the weights' abstention line for this question (a
        `qabot ask` answered by a `qabot serve` started with another QABOT_ABSTAIN)."""
        started = time.perf_counter()
        question = _check_question(question)
        with self._answering():
            idx = self.indexes()
            t0 = time.perf_counter()
            # The encode keeps BLAS's threads: the numpy runtime's products are large enough to
            # gain from both cores (7.3 ms against 10.5 ms on one).
            qvec, qtok = self._encode(idx, [question], mode)[0]
            t1 = time.perf_counter()
            with _one_blas_thread():
                ranked = self._rank(idx, question, qvec, mode, collections, qtok)
                t2 = time.perf_counter()
                answers = self._select(idx, ranked, k, mode, abstain_below)
                t3 = time.perf_counter()
        timings = {
            "embed": (t1 - t0) * 1000,
            "search": (t2 - t1) * 1000,
            "select": (t3 - t2) * 1000,
            "total": (t3 - started) * 1000,
        }
        return Answer(
            question=question,
            abstained=not answers,
            answers=tuple(answers),
            timings=timings,
            mode=mode,
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
        idx = self.indexes()
        out = []
        for question, (qvec, qtok) in zip(
            questions, self._encode(idx, questions, mode), strict=True
        ):
            ranked = self._rank(idx, question, qvec, mode, collections, qtok)
            assert ranked.confidence is not None
            out.append(
                Ranked(ranked.positions[:depth], ranked.scores[:depth], ranked.confidence[:depth])
            )
        return out

    def _encode(
        self, idx: Indexes, questions: list[str], mode: Mode
    ) -> list[tuple[np.ndarray | None, QuestionTokens | None]]:
        """Each question's vector, and its word pieces when the ranking uses them."""
        table = idx.sentences.tokens
        if mode == "bm25":
            return [(None, None)] * len(questions)
        if mode == "dense" or table is None:
            return [(v, None) for v in self.embedder.encode(questions)]
        enc = self.embedder.encode_tokens(questions)
        return [
            (enc.vectors[i], table.question(enc.token_ids[i], enc.tokens[i], enc.pieces[i]))
            for i in range(len(questions))
        ]

    def sentence_rowids(self, positions: np.ndarray) -> np.ndarray:
        """SQLite row ids of sentences at these index positions."""
        return self.indexes().sentences.rowids[positions]

    def sentence_texts(self, positions: np.ndarray) -> list[str]:
        """The text of the sentences at these index positions, in order."""
        rows = self._sentence_rows(self.indexes(), [int(p) for p in positions])
        return [rows[int(p)]["text"] for p in positions]

    def abstains(
        self, ranked: Ranked, mode: Mode = "hybrid", abstain_below: float | None = None
    ) -> bool:
        """Whether `ask` would answer nothing for this ranking."""
        assert ranked.confidence is not None
        line = self._threshold(mode, abstain_below)
        return ranked.scores.size == 0 or float(ranked.confidence[0]) < line

    def _rank(
        self,
        idx: Indexes,
        question: str,
        qvec: np.ndarray | None,
        mode: Mode,
        collections: list[str] | None,
        qtok: QuestionTokens | None = None,
    ) -> Ranked:
        sents, passes = idx.sentences, idx.passages
        if len(sents.rowids) == 0:
            return _empty()
        mask = idx.collection_mask(collections)
        sent_ok = None if mask is None else mask[sents.article]
        pass_ok = None if mask is None else mask[passes.article]
        of_passage = idx.sentence_passage

        s_terms = sents.bm25.query_terms(question)
        s_bm = sents.bm25.matches(s_terms) if mode != "dense" else None
        p_terms = passes.bm25.query_terms(question) if mode == "hybrid" else []
        p_bm = passes.bm25.matches(p_terms) if mode == "hybrid" else None
        if sent_ok is not None and s_bm is not None:
            s_bm = s_bm.where(sent_ok)
        if pass_ok is not None and p_bm is not None:
            p_bm = p_bm.where(pass_ok)

        pools: list[np.ndarray] = []
        if s_bm is not None:
            pools.append(s_bm.top(self.sentence_depth))
        if qvec is not None:
            pools.append(sents.nearest(qvec, self.sentence_depth, sent_ok))
        if mode == "hybrid":
            assert p_bm is not None and qvec is not None
            top_p = np.union1d(
                p_bm.top(self.passage_depth),
                passes.nearest(qvec, self.passage_depth, pass_ok),
            )
            pools.append(self._members(idx, top_p)[0])
        cand = np.unique(np.concatenate(pools)) if pools else np.zeros(0, dtype=np.int64)
        if sent_ok is not None:
            cand = cand[sent_ok[cand]]
        if cand.size == 0:
            return _empty()

        if mode == "bm25":
            assert s_bm is not None
            s_max = max(sents.bm25.max_score(s_terms), 1e-6)
            score = s_bm.at(cand)
            return _sorted(cand, score, score / s_max)
        assert qvec is not None
        s_dense = np.asarray(sents.rows(cand) @ qvec, dtype=np.float32)
        if mode == "dense":
            return _sorted(cand, s_dense, s_dense)

        assert s_bm is not None and p_bm is not None
        w = self.weights
        # Candidates share passages (~400 sentences in ~100): each passage is decoded and
        # looked up once.
        pos, of_pos = np.unique(of_passage[cand], return_inverse=True)
        p_dense = np.asarray(passes.rows(pos) @ qvec, dtype=np.float32)[of_pos]
        # Every signal is scaled against the same fixed sample of the store's sentences, so
        # the cost does not grow with the store.
        s_cand_bm, p_cand_bm = s_bm.at(cand), p_bm.at(pos)[of_pos]
        pop = self._sample(idx)
        score = (
            w.sentence_dense * pop.sentence_dense.z(s_dense, qvec)
            + w.passage_dense * pop.passage_dense.z(p_dense, qvec)
            + w.sentence_bm25 * _z(s_cand_bm, pop.sentence_bm25(s_terms, sent_ok))
            + w.passage_bm25 * _z(p_cand_bm, pop.passage_bm25(p_terms, pass_ok))
        )
        s_max = max(sents.bm25.max_score(s_terms), 1e-6)
        p_max = max(passes.bm25.max_score(p_terms), 1e-6)
        total = (
            w.confidence_sentence_dense
            + w.confidence_passage_dense
            + w.confidence_sentence_bm25
            + w.confidence_passage_bm25
        )
        confidence = (
            (
                w.confidence_sentence_dense * s_dense
                + w.confidence_passage_dense * p_dense
                + w.confidence_sentence_bm25 * s_cand_bm / s_max
                + w.confidence_passage_bm25 * p_cand_bm / p_max
            )
            / total
            * 2
        ) - w.unknown_words_penalty * sents.bm25.unknown_share(question)
        table = sents.tokens
        if (
            qtok is None
            or table is None
            or not self._rerank(idx, table, qtok, cand, score, confidence)
        ):
            # No token vectors (a store from before them): the threshold calibrated without.
            confidence -= w.plain_confidence_margin
        return _sorted(cand, score, confidence)

    def _rerank(
        self,
        idx: Indexes,
        table: TokenTable,
        qtok: QuestionTokens,
        cand: np.ndarray,
        score: np.ndarray,
        confidence: np.ndarray,
    ) -> bool:
        """Add the late-interaction scores to the best `token_depth` candidates' scores and
        confidences, in place; whether there were any to add.

        Sentences without token vectors (stored before they were kept) get the mean of the
        others', so that they neither gain nor lose against them.
        """
        w = self.weights
        depth = min(w.token_depth, len(cand))
        if depth == 0:
            return False
        top = np.argpartition(-score, depth - 1)[:depth] if depth < len(cand) else np.arange(depth)
        chosen = cand[top]
        passages = idx.sentence_passage[chosen].astype(np.int64)
        unique_p, of_p = np.unique(passages, return_inverse=True)
        members, counts = self._members(idx, unique_p)
        member_group = np.repeat(np.arange(len(unique_p)), counts)
        articles = np.concatenate([idx.sentences.article[chosen], idx.passages.article[unique_p]])
        sims = table.maxsim(
            qtok,
            np.concatenate([chosen, members]),
            np.concatenate([np.arange(depth), depth + member_group]),
            self._in_title(idx, qtok, articles),
        )
        s_sim, p_sim = sims[:depth], sims[depth:][of_p]
        unknown = np.isnan(s_sim)  # sentences stored without token vectors
        for values in (s_sim, p_sim):
            missing = np.isnan(values)
            if missing.all():
                return False
            values[missing] = float(values[~missing].mean())
        score[top] += w.sentence_tokens * s_sim + w.passage_tokens * p_sim
        # Confidence mixes in the mean of the two, on the same scale as before; candidates
        # past the depth take the mean of those reranked, so every confidence is comparable.
        # One stored without token vectors keeps its own confidence, shifted as when none
        # has them: the others' MaxSim says nothing about it.
        plain = confidence - w.plain_confidence_margin
        matched = np.full(len(cand), float(((s_sim + p_sim) / 2).mean()), dtype=np.float32)
        matched[top] = (s_sim + p_sim) / 2
        confidence += w.confidence_tokens * matched
        confidence /= 1 + w.confidence_tokens
        confidence[top[unknown]] = plain[top[unknown]]
        return True

    def _in_title(self, idx: Indexes, qtok: QuestionTokens, articles: np.ndarray) -> np.ndarray:
        """Which question pieces each of these articles' titles holds, (pieces, articles)."""
        titles = self._title_pieces(idx, articles)
        unique, of = np.unique(articles, return_inverse=True)
        ids = qtok.ids.tolist()
        held = np.array([[i in titles[a] for a in unique.tolist()] for i in ids], dtype=bool)
        return held.reshape(len(ids), len(unique))[:, of]

    def _title_pieces(self, idx: Indexes, articles: np.ndarray) -> dict[int, frozenset[int]]:
        """The word piece ids of these articles' titles (as embedded), each tokenised once
        per index generation."""
        cached = self._known_titles
        if cached is None or cached[0] is not idx:
            cached = self._known_titles = (idx, {})
        known = cached[1]
        missing = sorted({int(a) for a in articles.tolist()} - known.keys())
        if missing:
            sources = self._sources(idx, {idx.article_ids[a] for a in missing})
            titles = [(sources[idx.article_ids[a]].title or "")[:200] for a in missing]
            pieces = self.embedder.piece_ids(titles)
            known.update((a, frozenset(p.tolist())) for a, p in zip(missing, pieces, strict=True))
        return known

    def _members(self, idx: Indexes, passages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sentence positions of these passages, without a pass over every sentence, and
        how many each passage has (its members come in that order)."""
        cached = self._passage_members
        if cached is None or cached[0] is not idx:
            order = np.argsort(idx.sentence_passage, kind="stable")
            bounds = np.zeros(len(idx.passages.rowids) + 1, dtype=np.int64)
            np.cumsum(
                np.bincount(idx.sentence_passage, minlength=len(idx.passages.rowids)),
                out=bounds[1:],
            )
            cached = self._passage_members = (idx, order, bounds)
        _, order, bounds = cached
        counts = bounds[passages + 1] - bounds[passages]
        if passages.size == 0:
            return np.zeros(0, dtype=np.int64), counts
        members = [order[bounds[p] : bounds[p + 1]] for p in passages.tolist()]
        return np.concatenate(members), counts

    def _sample(self, idx: Indexes) -> _Population:
        """The sentences (and their passages) whose scores stand for the whole store in the
        z-scores: their BM25 weights and the moments of their vectors, computed once per
        index generation (gathering the sample for each question cost ~2 ms at 45k
        sentences, ~6 ms at 4.5M)."""
        cached = self._population
        if cached is not None and cached[0] is idx:
            return cached[1]
        sample = stats_sample(len(idx.sentences.rowids))
        passages = idx.sentence_passage[sample].astype(np.int64)
        sentence_rows, passage_rows = idx.sample_rows or sample_rows(idx)
        sentence_vectors, passage_vectors = idx.sample_vectors or sample_vectors(idx)
        pop = _Population(
            sentences=sample,
            passages=passages,
            sentence_dense=_Moments.of(sentence_vectors),
            passage_dense=_Moments.of(passage_vectors),
            sentence_rows=sentence_rows,
            passage_rows=passage_rows,
        )
        self._population = (idx, pop)
        return pop

    def _threshold(self, mode: Mode, abstain_below: float | None = None) -> float:
        if mode != "hybrid":
            return 0.0
        return self.weights.abstain_below if abstain_below is None else abstain_below

    def _select(
        self, idx: Indexes, ranked: Ranked, k: int, mode: Mode, abstain_below: float | None = None
    ) -> list[AnswerSentence]:
        """The top k distinct sentences above the abstention line, with their sources."""
        if self.abstains(ranked, mode, abstain_below):
            return []
        assert ranked.confidence is not None
        first = float(ranked.confidence[0])
        floor = max(self._threshold(mode, abstain_below), first * self.weights.relative_floor)
        depth = 8 * k + 20
        top = [
            (int(p), float(c))
            for i, (p, c) in enumerate(
                zip(ranked.positions[:depth], ranked.confidence[:depth], strict=True)
            )
            if i == 0 or c >= floor
        ]
        rows = self._sentence_rows(idx, [p for p, _ in top])
        distinct: list[tuple[list[str], dict[str, Any]]] = []
        for pos, score in top:
            row = rows[pos]
            tokens = words(row["text"])
            repeat = next((e for w, e in distinct if same_words(tokens, w)), None)
            if repeat is not None:
                # The same fact again: cite this article too, on the sentence already chosen.
                if row["article_id"] not in repeat["articles"]:
                    repeat["articles"].append(row["article_id"])
            elif len(distinct) < k:
                distinct.append((tokens, {**row, "score": score, "articles": [row["article_id"]]}))
            # Once k are chosen, the rest only matter as other printings of those k.
        chosen = [e for _, e in distinct]
        infos = self._sources(idx, {a for e in chosen for a in e["articles"]})
        return [
            AnswerSentence(
                text=e["text"],
                score=e["score"],
                start=e["start"],
                end=e["end"],
                article=infos[e["articles"][0]],
                also_in=tuple(infos[a] for a in e["articles"][1:]),
                context_before=self._context_before(idx, e),
            )
            for e in chosen
        ]

    def _sentence_rows(self, idx: Indexes, positions: list[int]) -> dict[int, dict[str, Any]]:
        """What answers need of these sentences, from the indexes' text table (no SQLite)."""
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
            pos: {
                "pos": pos,
                "article_id": idx.article_ids[article],
                "idx": i,
                "start": start,
                "end": end,
                "text": text,
            }
            for pos, article, i, start, end, text in columns
        }

    def _context_before(self, idx: Indexes, row: dict[str, Any]) -> str | None:
        """The sentence before this one in its passage, when this one leans on it."""
        if row["idx"] == 0 or not _LEANS_BACK.match(row["text"]):
            return None
        pos = row["pos"]
        sents, of_passage = idx.sentences, idx.sentence_passage
        # Sentences are in article order, so the one before sits at the position before.
        same_passage = (
            sents.article[pos - 1] == sents.article[pos]
            and sents.position[pos - 1] == row["idx"] - 1
            and of_passage[pos - 1] == of_passage[pos]
        )
        if not same_passage:
            return None
        assert sents.texts is not None
        return sents.texts.get([pos - 1])[0]

    def _sources(self, idx: Indexes, article_ids: set[str]) -> dict[str, Source]:
        """The sources of these articles, from the table saved with the indexes (or SQLite
        for indexes saved before it), each read once per index generation (every write to
        the store starts a new one)."""
        cached = self._known_sources
        if cached is None or cached[0] is not idx:
            cached = self._known_sources = (idx, {})
        known = cached[1]
        missing = tuple(a for a in article_ids if a not in known)
        for r in self._source_rows(idx, missing) if missing else []:
            known[r[0]] = Source(
                id=r[0], title=r[1], publisher=r[2], url=r[3], published=r[4], source=r[5]
            )
        return {a: known[a] for a in article_ids}

    def _source_rows(self, idx: Indexes, ids: tuple[str, ...]) -> Iterable[tuple[Any, ...]]:
        """(id, title, publisher, url, published, source) of these articles."""
        if idx.article_sources is not None:
            saved = idx.article_sources.get([idx.article_position[a] for a in ids])
            return [(a, *json.loads(fields)) for a, fields in zip(ids, saved, strict=True)]
        marks = ",".join("?" * len(ids))
        return self.store.execute(
            "SELECT id, title, publisher, url, published, source FROM articles"
            f" WHERE id IN ({marks})",
            ids,
        )


@dataclass(frozen=True)
class _Moments:
    """The mean and covariance of a sample of vectors: the mean and spread of their cosines
    to any question follow from these alone (mean . q and q' C q), exactly as if the sample's
    4,096 vectors were scored, at a tenth of the cost and none of the memory traffic
    (12 MB read a question for the two samples, which pushed the next steps' data out of
    the cache)."""

    mean: np.ndarray
    cov: np.ndarray

    @classmethod
    def of(cls, vectors: np.ndarray) -> _Moments:
        v = np.asarray(vectors, dtype=np.float64)
        if len(v) == 0:
            return cls(np.zeros(v.shape[1], np.float32), np.zeros((v.shape[1],) * 2, np.float32))
        mean = v.mean(axis=0)
        centred = v - mean
        return cls(mean.astype(np.float32), (centred.T @ centred / len(v)).astype(np.float32))

    def z(self, values: np.ndarray, qvec: np.ndarray) -> np.ndarray:
        """`values` (cosines to `qvec`) as z-scores against the sample's cosines to `qvec`."""
        std = float(np.sqrt(max(float(qvec @ self.cov @ qvec), 0.0)))
        mean = float(self.mean @ qvec)
        return (values - mean) / std if std > 1e-9 else values * 0.0


@dataclass(frozen=True)
class _Population:
    """A fixed sample of the store, for the z-scores: its positions, the moments of its
    vectors and its BM25 weights."""

    sentences: np.ndarray
    passages: np.ndarray
    sentence_dense: _Moments
    passage_dense: _Moments
    sentence_rows: Rows
    passage_rows: Rows

    def sentence_bm25(self, terms: list[int], ok: np.ndarray | None) -> np.ndarray:
        """The sample's BM25 scores for these terms (0 outside the asked collections)."""
        scores = self.sentence_rows.scores(terms)
        return scores if ok is None else np.where(ok[self.sentences], scores, 0.0)

    def passage_bm25(self, terms: list[int], ok: np.ndarray | None) -> np.ndarray:
        scores = self.passage_rows.scores(terms)
        return scores if ok is None else np.where(ok[self.passages], scores, 0.0)


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


def _check_question(question: str) -> str:
    q = " ".join(question.split())
    if not q:
        raise BadQuestionError("the question is empty; ask something, e.g. 'Who won?'")
    if len(q) > MAX_QUESTION_CHARS:
        raise BadQuestionError(
            f"the question is {len(q)} characters long; the limit is {MAX_QUESTION_CHARS}"
        )
    return q


def _empty() -> Ranked:
    return Ranked(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))


def _sorted(cand: np.ndarray, score: np.ndarray, confidence: np.ndarray) -> Ranked:
    order = np.argsort(-score, kind="stable")
    return Ranked(
        cand[order].astype(np.int64),
        score[order].astype(np.float32),
        np.asarray(confidence, dtype=np.float32)[order],
    )


def _z(values: np.ndarray, population: np.ndarray) -> np.ndarray:
    """`values` as z-scores against `population` (a flat population scores 0)."""
    std = float(population.std())
    return (values - float(population.mean())) / std if std > 1e-9 else values * 0.0
