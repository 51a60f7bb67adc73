"""How the question's road mixes its signals: one frozen set of numbers, tuned on the ReQA
even split only (see docs/answer-quality-notes.md)."""

from __future__ import annotations

from dataclasses import dataclass

from retriever.models import ABSTAIN_LEVELS


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
    # (retriever/rerank.py): MaxSim of the question against the sentence, and against all
    # of its passage's sentences, each on a 0-1 scale, added with these weights.
    token_depth: int = 30
    sentence_tokens: float = 40.0
    passage_tokens: float = 30.0
    # Abstention's confidence is (the mix above + this x the two MaxSims' mean) / (1 +
    # this): at 2.5% of the even split's questions abstaining, 2 abstains on 71% of the
    # even lines of samples/unanswerable.jsonl, 0 on 64% (1: 68%, 3: 73%, flat past 2).
    confidence_tokens: float = 2.0
