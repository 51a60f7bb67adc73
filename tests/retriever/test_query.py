"""The query stage's share of a question's words the store never saw (over BM25's vocab)."""

from __future__ import annotations

import pytest

from retriever.query import unknown_share
from store.indexes.bm25 import BM25, tokenize

DOCS = [
    "Harbor Bridge\nThe bridge reopened on Monday after two years of repairs.",
    "Harbor Bridge\nCrews replaced every cable of the bridge.",
    "Orchard\nVolunteers planted forty apple trees in the community orchard.",
]


@pytest.fixture
def bm25() -> BM25:
    return BM25.build(DOCS)


def share(bm25: BM25, query: str) -> float:
    return unknown_share(bm25.vocab, bm25.idf, tokenize(query))


def test_unknown_share_weighs_words_no_article_holds(bm25: BM25) -> None:
    assert share(bm25, "When did the bridge reopen?") == 0.0
    assert share(bm25, "How many moons does Jupiter have?") == 1.0
    half = share(bm25, "Who repaired the Jupiter bridge?")
    assert 0.0 < half < 1.0
    assert share(bm25, "what is it?") == 0.0  # nothing but stopwords
