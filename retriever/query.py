"""The question, encoded and tokenised once, into the one object every later stage reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from retriever.errors import BadQuestionError
from retriever.models import Mode
from store.embedding import Embedder
from store.indexes.bm25 import tokenize, unknown_share
from store.indexes.build import Indexes
from store.indexes.seams import LexicalIndex
from store.indexes.tokens import QuestionTokens

__all__ = ["Query", "check_question", "encode_queries", "unknown_share"]

MAX_QUESTION_CHARS = 1000


@dataclass(frozen=True)
class Query:
    """A question as the ranking sees it, for one snapshot of the indexes.

    `vector` is None in BM25 mode; `tokens` (its word pieces, for the late-interaction
    rerank) is None unless the mode is hybrid and the store keeps token vectors.
    """

    text: str
    vector: np.ndarray | None
    tokens: QuestionTokens | None
    sentence_terms: list[int]  # BM25 columns of the sentence index (repeats kept)
    passage_terms: list[int]  # and of the passage index
    sentence_bm25_max: float  # the best BM25 a sentence could reach for these terms
    passage_bm25_max: float
    unknown_share: float  # IDF-weighted share of its words no sentence holds


def check_question(question: str) -> str:
    """The question with its whitespace collapsed; refused when empty or too long."""
    q = " ".join(question.split())
    if not q:
        raise BadQuestionError("the question is empty; ask something, e.g. 'Who won?'")
    if len(q) > MAX_QUESTION_CHARS:
        raise BadQuestionError(
            f"the question is {len(q)} characters long; the limit is {MAX_QUESTION_CHARS}"
        )
    return q


def encode_queries(
    indexes: Indexes, embedder: Embedder, questions: list[str], mode: Mode
) -> list[Query]:
    """Each question encoded (in one batch) and tokenised for both BM25 indexes."""
    table = indexes.sentences.tokens
    vectors: list[np.ndarray | None]
    pieces: list[QuestionTokens | None]
    if mode == "bm25":
        vectors, pieces = [None] * len(questions), [None] * len(questions)
    else:
        enc = embedder.encode_query(questions)
        vectors = list(enc.vectors)
        pieces = [
            None
            if mode == "dense" or table is None
            else table.question(enc.token_ids[i], enc.tokens[i], enc.pieces[i])
            for i in range(len(questions))
        ]
    sents: LexicalIndex = indexes.sentences.words
    passes: LexicalIndex = indexes.passages.words
    out = []
    for text, vector, tokens in zip(questions, vectors, pieces, strict=True):
        words = tokenize(text)
        s_terms, p_terms = sents.terms(words), passes.terms(words)
        out.append(
            Query(
                text=text,
                vector=vector,
                tokens=tokens,
                sentence_terms=s_terms,
                passage_terms=p_terms,
                sentence_bm25_max=max(sents.max_score(s_terms), 1e-6),
                passage_bm25_max=max(passes.max_score(p_terms), 1e-6),
                unknown_share=sents.unknown_share(words),
            )
        )
    return out
