"""BM25: tokens, scores, the bound abstention divides by, and words the store never saw."""

from __future__ import annotations

from pathlib import Path

import pytest

from store.bm25 import BM25, tokenize

DOCS = [
    "Harbor Bridge\nThe bridge reopened on Monday after two years of repairs.",
    "Harbor Bridge\nCrews replaced every cable of the bridge.",
    "Orchard\nVolunteers planted forty apple trees in the community orchard.",
]


@pytest.fixture
def bm25() -> BM25:
    return BM25.build(DOCS)


def test_tokens_are_stemmed_and_stopwords_dropped() -> None:
    assert tokenize("The cities were operated by the operators") == ["city", "operat", "operator"]
    assert tokenize("Who planted the trees?") == ["plant", "tree"]


def test_the_document_with_the_words_scores_highest(bm25: BM25) -> None:
    scores = bm25.scores(bm25.query_terms("Who planted apple trees?"))
    assert scores.argmax() == 2 and scores[0] == 0.0
    bound = bm25.max_score(bm25.query_terms("Who planted apple trees?"))
    assert 0 < scores.max() <= bound


def test_unknown_share_weighs_words_no_article_holds(bm25: BM25) -> None:
    assert bm25.unknown_share("When did the bridge reopen?") == 0.0
    assert bm25.unknown_share("How many moons does Jupiter have?") == 1.0
    half = bm25.unknown_share("Who repaired the Jupiter bridge?")
    assert 0.0 < half < 1.0
    assert bm25.unknown_share("what is it?") == 0.0  # nothing but stopwords


def test_save_and_load_round_trip(bm25: BM25, tmp_path: Path) -> None:
    bm25.save(tmp_path / "bm25")
    again = BM25.load(tmp_path / "bm25")
    terms = again.query_terms("bridge cable")
    assert terms == bm25.query_terms("bridge cable")
    assert (again.scores(terms) == bm25.scores(terms)).all()
