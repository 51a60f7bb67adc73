"""MaxSim over the stored token vectors, and what each question piece weighs in it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from retriever.rerank import maxsim, piece_weights, question_weights
from store.db import Store
from store.indexes.saved import open_indexes
from store.indexes.tokens import QuestionTokens
from store.ingest import Ingestor
from store.models import RawArticle
from tests.doubles import HashingEmbedder

BODY = (
    "The bridge reopened on Monday after a two-year repair of all its cables. "
    "The work cost 48 million dollars, more than the city had planned.\n\n"
    "Mayor Lena Ortiz was the first to cross the bridge on a bicycle."
)


def article(text: str = BODY, key: str = "bridge", title: str = "Harbour crossing") -> RawArticle:
    return RawArticle(key=key, text=text, title=title, pre_cleaned=True)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "qabot.sqlite3", model="hashing-64", dim=64)


def test_maxsim_finds_the_sentence_holding_the_questions_rare_words(store: Store) -> None:
    embedder = HashingEmbedder()
    Ingestor(store, embedder).ingest([article()])
    indexes = open_indexes(store, store.path.parent / "index")
    table = indexes.sentences.tokens
    assert table is not None
    question = "Who was first to cross on a bicycle?"
    enc = embedder.encode_sentences([question])
    q = table.question(enc.token_ids[0], enc.tokens[0], enc.pieces[0])
    assert q is not None
    n = len(table)
    scores = maxsim(table, q, np.arange(n), np.arange(n))
    texts = indexes.sentences.texts
    assert texts is not None
    assert "bicycle" in texts.get([int(np.argmax(scores))])[0]
    # "who", "was", "to", "on", "a" and "?" never outweigh the content words.
    weights = question_weights(q)
    content = weights[q.content].min()
    assert weights[~q.content].max() <= content + 1e-6


def test_a_question_that_restates_the_title_scores_every_sentence_of_it_alike() -> None:
    # Pieces: "where" (a stopword), "bridge", "reopen"; the title holds the last two.
    q = QuestionTokens(
        ids=np.array([1, 2, 3], np.int32),
        vectors=np.eye(3, dtype=np.float32),
        idf=np.array([4.0, 1.0, 1.0], np.float32),
        content=np.array([False, True, True]),
    )
    in_title = np.array([[False], [True], [True]])
    weights = piece_weights(q, in_title)
    # Nothing outside the title is asked, so "where" alone may not pick the sentence.
    assert weights[0, 0] == 0.0 and weights[:, 0].sum() == pytest.approx(1.0)
    # Without a title, "where" weighs no more than the content words (not its IDF of 4).
    assert question_weights(q)[0] == pytest.approx(question_weights(q)[1])
