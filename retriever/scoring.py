"""Scoring: each candidate's signals mixed into a ranking score and an absolute confidence.

The ranking score sums z-scores: each signal against the same signal over a fixed sample of
the store (`Population`), so a signal that separates this question's sentences well counts
for more than one that scores everything alike. The confidence, which abstention reads,
mixes the raw cosines and BM25 over the best score the question's words could reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retriever.candidates import Candidates
from retriever.population import Population
from retriever.query import Query
from retriever.weights import Weights


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

    @classmethod
    def empty(cls) -> Ranked:
        return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))

    @classmethod
    def of(cls, positions: np.ndarray, score: np.ndarray, confidence: np.ndarray) -> Ranked:
        """Sorted by score, best first (ties keep the positions' order)."""
        order = np.argsort(-score, kind="stable")
        return cls(
            positions[order].astype(np.int64),
            score[order].astype(np.float32),
            np.asarray(confidence, dtype=np.float32)[order],
        )


@dataclass
class Scored:
    """Candidates with their ranking scores and confidences, in candidate order (not yet
    sorted: a reranker adds to both in place)."""

    candidates: Candidates
    score: np.ndarray
    confidence: np.ndarray

    def ranked(self) -> Ranked:
        return Ranked.of(self.candidates.positions, self.score, self.confidence)


def score_hybrid(cands: Candidates, query: Query, pop: Population, weights: Weights) -> Scored:
    """The four signals mixed: z-scores for ranking, raw values for the confidence."""
    w = weights
    assert query.vector is not None
    assert cands.sentence_bm25 is not None and cands.passage_bm25 is not None
    assert cands.sentence_dense is not None and cands.passage_dense is not None
    s_dense, p_dense = cands.sentence_dense, cands.passage_dense
    s_bm, p_bm = cands.sentence_bm25, cands.passage_bm25
    qvec = query.vector
    score = (
        w.sentence_dense * pop.sentence_dense.z(s_dense, qvec)
        + w.passage_dense * pop.passage_dense.z(p_dense, qvec)
        + w.sentence_bm25 * z(s_bm, pop.sentence_bm25(query.sentence_terms, cands.sentence_ok))
        + w.passage_bm25 * z(p_bm, pop.passage_bm25(query.passage_terms, cands.passage_ok))
    )
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
            + w.confidence_sentence_bm25 * s_bm / query.sentence_bm25_max
            + w.confidence_passage_bm25 * p_bm / query.passage_bm25_max
        )
        / total
        * 2
    ) - w.unknown_words_penalty * query.unknown_share
    return Scored(cands, score, confidence)


def z(values: np.ndarray, population: np.ndarray) -> np.ndarray:
    """`values` as z-scores against `population` (a flat population scores 0)."""
    std = float(population.std())
    return (values - float(population.mean())) / std if std > 1e-9 else values * 0.0
