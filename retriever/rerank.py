"""Rerank: a second, finer look at the best candidates.

A `Reranker` takes the scored candidates and adds to the scores and confidences of those it
looks at, in place. Today's is late interaction (MaxSim, as in ColBERT) over the token
vectors MiniLM produced while embedding each sentence, stored at ingest (store/indexes/tokens.py);
a checker trained here plugs in beside it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from retriever.query import Query
from retriever.scoring import Scored
from retriever.snapshot import Snapshot
from retriever.weights import Weights
from store.indexes.tokens import QuestionTokens, TokenTable


class Reranker(Protocol):
    def rerank(self, snapshot: Snapshot, query: Query, scored: Scored) -> bool:
        """Add to `scored`'s scores and confidences in place; whether it had anything to
        go on (when not, the confidences are taken as calibrated without a reranker)."""
        ...


class MaxSimReranker:
    """For each word piece of the question, its best cosine with any word piece of the
    sentence (and, apart, of its passage), weighted by IDF, for the best `token_depth`."""

    def __init__(self, weights: Weights) -> None:
        self.weights = weights

    def rerank(self, snapshot: Snapshot, query: Query, scored: Scored) -> bool:
        """Sentences without token vectors (stored before they were kept) get the mean of
        the others', so that they neither gain nor lose against them."""
        table = snapshot.indexes.sentences.tokens
        qtok = query.tokens
        if qtok is None or table is None:
            return False
        w = self.weights
        idx = snapshot.indexes
        cand, score, confidence = scored.candidates.positions, scored.score, scored.confidence
        depth = min(w.token_depth, len(cand))
        if depth == 0:
            return False
        top = np.argpartition(-score, depth - 1)[:depth] if depth < len(cand) else np.arange(depth)
        chosen = cand[top]
        passages = idx.sentence_passage[chosen].astype(np.int64)
        unique_p, of_p = np.unique(passages, return_inverse=True)
        members, counts = snapshot.members(unique_p)
        member_group = np.repeat(np.arange(len(unique_p)), counts)
        articles = np.concatenate([idx.sentences.article[chosen], idx.passages.article[unique_p]])
        sims = maxsim(
            table,
            qtok,
            np.concatenate([chosen, members]),
            np.concatenate([np.arange(depth), depth + member_group]),
            _in_title(snapshot, qtok.ids, articles),
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


def _in_title(snapshot: Snapshot, piece_ids: np.ndarray, articles: np.ndarray) -> np.ndarray:
    """Which question pieces each of these articles' titles holds, (pieces, articles)."""
    titles = snapshot.title_pieces(articles)
    unique, of = np.unique(articles, return_inverse=True)
    ids = piece_ids.tolist()
    held = np.array([[i in titles[a] for a in unique.tolist()] for i in ids], dtype=bool)
    return held.reshape(len(ids), len(unique))[:, of]


def maxsim(
    table: TokenTable,
    question: QuestionTokens,
    positions: np.ndarray,
    groups: np.ndarray,
    in_title: np.ndarray | None = None,
) -> np.ndarray:
    """MaxSim of the question against each group of `table`'s sentences: for each question piece,
    its best cosine with any piece of the group, averaged with the pieces' weights.

    A piece in the group's title (`in_title`, (pieces, G)) counts as matched: the
    sentences were embedded under it and the title is what they are about, but its
    pieces are not stored with each sentence, where they would match a question that
    restates the headline in every sentence alike, drowning what tells them apart.

    `positions` are sentences and `groups` the group of each (0..G-1); a group whose
    sentences have no token vectors scores NaN.
    """
    count = int(groups.max()) + 1 if len(groups) else 0
    best = np.full((len(question.ids), count), -np.inf, dtype=np.float32)
    if count == 0:
        return np.zeros(0, dtype=np.float32)
    # Each sentence once (a candidate is also a member of its passage's group).
    unique, of = np.unique(positions, return_inverse=True)
    lo = table.offsets[unique]
    lengths = table.offsets[unique + 1] - lo
    per_sentence = np.full((len(question.ids), len(unique)), -np.inf, dtype=np.float32)
    total = int(lengths.sum())
    if total:
        # Every token of every sentence: row i of sentence j sits at lo[j] + i,
        # gathered in one fancy index.
        first = np.cumsum(lengths) - lengths
        at = np.repeat(lo - first, lengths) + np.arange(total)
        rows = np.asarray(table.tokens[at], dtype=np.float32)
        sims = question.vectors @ rows.T  # (pieces, all their tokens)
        sims *= table.inverse_norms[at]  # cosines
        has = lengths > 0
        per_sentence[:, has] = np.maximum.reduceat(sims, first[has], axis=1)
    order = np.argsort(groups, kind="stable")
    present, starts = np.unique(groups[order], return_index=True)
    best[:, present] = np.maximum.reduceat(per_sentence[:, of[order]], starts, axis=1)
    if in_title is None:
        in_title = np.zeros(best.shape, dtype=bool)
    missing = ~np.isfinite(best).any(axis=0)
    best = np.where(in_title, np.float32(1), np.where(np.isfinite(best), best, 0.0))
    out = (piece_weights(question, in_title) * best).sum(axis=0)
    out[missing] = np.nan
    return out.astype(np.float32)


def piece_weights(question: QuestionTokens, in_title: np.ndarray) -> np.ndarray:
    """The pieces' weights against groups of sentences, (pieces, G), each column
    summing to 1, given which pieces are in each group's title (`in_title`).

    A piece weighs its IDF over the store's sentences. Stopwords and punctuation weigh
    at most the mean of the content pieces outside the title, and nothing where there
    are none (a question that only restates the title: its "where" and "?" alone would
    pick a sentence at random). In a small store "where" and "?" occur in no sentence
    and would take the highest IDF (in 41 sentences "Where did the Russian elite units
    land?" put 78% of its weight on "where", "did" and "?"); yet they are worth
    keeping, in context they stand for what is asked: weighing them nothing cost 0.004
    MRR on ReQA (even split).
    """
    raw = np.repeat(question.idf[:, None], in_title.shape[1], axis=1)
    if question.content.any():
        content = question.content[:, None]
        counted = content & ~in_title
        cap = (raw * counted).sum(axis=0) / np.maximum(counted.sum(axis=0), 1)
        raw = np.where(content, raw, np.minimum(raw, cap))
    elif float(question.idf.sum()) <= 1e-9:  # only the commonest pieces ("what is it?")
        raw = np.ones_like(raw)
    total = raw.sum(axis=0)
    return (raw / np.where(total > 1e-9, total, 1.0)).astype(np.float32)


def question_weights(question: QuestionTokens) -> np.ndarray:
    """What each piece counts for in MaxSim against a group with no title, summing to 1
    (see `piece_weights`)."""
    return piece_weights(question, np.zeros((len(question.ids), 1), dtype=bool))[:, 0]
