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
        sims = table.maxsim(
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
