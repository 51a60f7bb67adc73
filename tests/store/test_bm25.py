"""BM25: tokens, scores and the bound abstention divides by."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from store.indexes.bm25 import BM25, HEAD, count_tokens, tokenize

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


def test_a_documents_length_is_counted_as_tokenize_counts_it() -> None:
    for doc in [*DOCS, "The cities' operations were operated by the operators' ties.", ""]:
        assert count_tokens(doc) == len(tokenize(doc))


def test_the_document_with_the_words_scores_highest(bm25: BM25) -> None:
    scores = bm25.scores(bm25.query_terms("Who planted apple trees?"))
    assert scores.argmax() == 2 and scores[0] == 0.0
    bound = bm25.max_score(bm25.query_terms("Who planted apple trees?"))
    assert 0 < scores.max() <= bound


def test_save_and_load_round_trip(bm25: BM25, tmp_path: Path) -> None:
    bm25.save(tmp_path / "bm25")
    again = BM25.load(tmp_path / "bm25")
    terms = again.query_terms("bridge cable")
    assert terms == bm25.query_terms("bridge cable")
    assert (again.scores(terms) == bm25.scores(terms)).all()


def test_an_index_saved_by_an_earlier_version_still_loads(bm25: BM25, tmp_path: Path) -> None:
    """Before 2026-12-02 the weights were one .npz file; such a saved index keeps working."""
    import json

    from scipy import sparse

    folder = tmp_path / "bm25"
    bm25.save(folder)
    for part in ("data", "indices", "indptr"):
        (folder / f"weights.{part}.npy").unlink()
    sparse.save_npz(folder / "weights.npz", bm25.weights, compressed=False)
    params = json.loads((folder / "params.json").read_text())
    del params["shape"]
    (folder / "params.json").write_text(json.dumps(params))
    again = BM25.load(folder)
    terms = bm25.query_terms("bridge cable")
    assert (again.scores(terms) == bm25.scores(terms)).all()


def test_matches_score_only_the_documents_with_a_query_word(bm25: BM25) -> None:
    terms = bm25.query_terms("Who planted apple trees near the bridge?")
    every = bm25.scores(terms)
    found = bm25.matches(terms)
    # The same scores as scoring every document, for the documents holding a word only.
    assert found.docs.tolist() == np.flatnonzero(every).tolist()
    assert np.allclose(found.at(np.arange(len(DOCS))), every)
    assert found.top(1).tolist() == [int(every.argmax())]
    assert sorted(found.top(10).tolist()) == found.docs.tolist()
    # A collection filter drops the others; what is left keeps its scores.
    allowed = np.zeros(len(DOCS), dtype=bool)
    allowed[found.docs[-1]] = True
    kept = found.where(allowed)
    assert kept.docs.tolist() == [found.docs[-1]] and kept.at(found.docs[:1]).tolist() == [0.0]
    assert len(bm25.matches(bm25.query_terms("Jupiter"))) == 0


def test_a_word_in_very_many_documents_offers_only_its_best_as_candidates(
    tmp_path: Path,
) -> None:
    # "river" is in every document; the short ones weigh it most. "delta" is rare.
    docs = [f"river {'words ' * (i % 50)}" for i in range(HEAD + 904)] + ["river delta"]
    bm25 = BM25.build(docs)
    river = bm25.matches(bm25.query_terms("river"))
    assert len(river) == HEAD  # the candidates stop at HEAD ...
    assert river.scores.min() >= np.sort(bm25.scores(bm25.query_terms("river")))[-HEAD]
    both = bm25.matches(bm25.query_terms("river delta"))
    assert both.top(1).tolist() == [len(docs) - 1]  # ... the rare word's documents come too,
    every = bm25.scores(bm25.query_terms("river delta"))
    assert np.allclose(both.at(np.arange(len(docs))), every)  # and every score is exact.
    bm25.save(tmp_path / "bm25")
    again = BM25.load(tmp_path / "bm25").matches(bm25.query_terms("river delta"))
    assert again.docs.tolist() == both.docs.tolist()


def test_rows_score_a_fixed_set_of_documents_as_the_whole_index_does() -> None:
    """The z-scores' sample: any positions, unsorted and repeated, each scored exactly."""
    rng = np.random.default_rng(5)
    words = ["bridge", "cable", "harbor", "orchard", "apple", "tree", "crew", "repair", "monday"]
    docs = [" ".join(rng.choice(words, size=int(rng.integers(1, 8)))) for _ in range(500)]
    index = BM25.build(docs)
    positions = np.array([499, 3, 3, 0, 250, 17, 499, 42])
    rows = index.rows(positions)
    for query in ("bridge cable repair", "apple apple tree", "crew"):
        terms = index.query_terms(query)
        np.testing.assert_allclose(rows.scores(terms), index.scores(terms)[positions], rtol=1e-6)
