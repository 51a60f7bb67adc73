"""Candidates: the sentences worth scoring for a question, and their raw signals.

The best sentences by BM25 and by the dense model, plus every sentence of the best passages
by either (hybrid), limited to the asked collections. Each candidate comes with the signals
the mode ranks by: its sentence's and its passage's BM25 and cosine to the question.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retriever.models import Mode
from retriever.query import Query
from retriever.snapshot import Snapshot
from store.indexes.seams import LexicalIndex, VectorIndex


@dataclass(frozen=True)
class Candidates:
    """Sentence positions (ascending, in index order) with the signals of the mode; a
    signal the mode does not use is None."""

    positions: np.ndarray
    sentence_ok: np.ndarray | None  # which sentences the asked collections allow (None: all)
    passage_ok: np.ndarray | None
    sentence_bm25: np.ndarray | None = None
    passage_bm25: np.ndarray | None = None
    sentence_dense: np.ndarray | None = None
    passage_dense: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.positions)


def gather(
    snapshot: Snapshot,
    query: Query,
    mode: Mode,
    collections: list[str] | None,
    *,
    sentence_depth: int,
    passage_depth: int,
) -> Candidates:
    """The candidates for this query and mode (no positions when nothing can match)."""
    idx = snapshot.indexes
    # Searched through their seams: the vectors, and the words (BM25 here, or Qdrant).
    sents: VectorIndex = idx.sentences
    passes: VectorIndex = idx.passages
    s_words: LexicalIndex = idx.sentences.words
    p_words: LexicalIndex = idx.passages.words
    s_allowed, p_allowed = idx.allowed(collections)
    sent_ok = None if s_allowed is None else s_allowed.mask
    pass_ok = None if p_allowed is None else p_allowed.mask
    lexical, dense, by_passage = mode != "dense", mode != "bm25", mode == "hybrid"

    s_bm = s_words.matches(query.sentence_terms, s_allowed) if lexical else None
    p_bm = p_words.matches(query.passage_terms, p_allowed) if by_passage else None

    qvec = query.vector
    pools: list[np.ndarray] = []
    if s_bm is not None:
        pools.append(s_bm.top(sentence_depth))
    if dense:
        assert qvec is not None
        pools.append(sents.nearest(qvec, sentence_depth, s_allowed))
    if by_passage:
        assert p_bm is not None and qvec is not None
        top_p = np.union1d(p_bm.top(passage_depth), passes.nearest(qvec, passage_depth, p_allowed))
        pools.append(snapshot.members(top_p)[0])
    cand = np.unique(np.concatenate(pools)) if pools else np.zeros(0, dtype=np.int64)
    if sent_ok is not None:
        cand = cand[sent_ok[cand]]
    found = Candidates(cand, sent_ok, pass_ok)
    if cand.size == 0:
        return found

    s_dense = None if qvec is None else sents.scores(qvec, cand)
    if not by_passage:
        return Candidates(
            cand,
            sent_ok,
            pass_ok,
            sentence_bm25=None if s_bm is None else s_bm.at(cand),
            sentence_dense=s_dense,
        )
    assert s_bm is not None and p_bm is not None and qvec is not None
    # Candidates share passages (~400 sentences in ~100): each passage is decoded and
    # looked up once.
    pos, of_pos = np.unique(idx.sentence_passage[cand], return_inverse=True)
    p_dense = passes.scores(qvec, pos)[of_pos]
    return Candidates(
        cand,
        sent_ok,
        pass_ok,
        sentence_bm25=s_bm.at(cand),
        passage_bm25=p_bm.at(pos)[of_pos],
        sentence_dense=s_dense,
        passage_dense=p_dense,
    )
