"""NumpyMiniLM, the torch-free all-MiniLM-L6-v2: same vectors and token counts as the original.

The fast tests need only numpy and the bundled weights; the `slow` ones load
sentence-transformers (~10 s) once for the module and compare against it row by row.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import numpy as np
import pytest

from store.embedding import bundled_model_path
from store.embedding.numpy_bert import NumpyMiniLM, _gelu_inplace
from store.embedding.sentence_transformer import SentenceTransformerEmbedder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

_TOPICS = (
    "The harbor bridge reopened on Monday after a two-year repair of all its steel cables",
    "city officials said the work cost far more than planned because of rusted anchors",
    "commuters who had taken ferries for months crowded the walkway at dawn",
    "engineers will inspect the deck every spring and publish their reports online",
    "a local bakery sold bridge-shaped pastries to celebrate the occasion",
)
# About 330 words, well over the 256 word pieces of the model's window: gets truncated.
LONG_PARAGRAPH = " ".join(f"{_TOPICS[i % len(_TOPICS)]} ({i})." for i in range(22))

TEXTS = [
    "What did the Russian units do near the Egyptian border?",
    "",
    "   ",
    "a",
    LONG_PARAGRAPH,
    "Crème brûlée, façade, naïve café — déjà vu in São Paulo and Zürich.",
    "Straße, Größe und Übermaß: ein kurzer deutscher Satz.",
    "Москва объявила о переброске войск к границе.",
    "東京の新しい橋は月曜日に開通した。",
    "الجسر أعيد افتتاحه يوم الاثنين",
    "Emoji test 🙂🚀 with “curly quotes” and ellipsis…",
    "  leading and trailing whitespace, with a\ttab and a\nnewline  ",
    "ALL CAPS HEADLINE: MAYOR CROSSES BRIDGE ON BICYCLE",
    "The repair cost $48,000,000 (about €44 million) in 2023-2024.",
    "See https://example.com/news?id=42&lang=en for details.",
    "def encode(self, texts: list[str]) -> np.ndarray: return x @ w",
    "bridge bridge bridge bridge bridge bridge bridge bridge",
    "Who was the first person to cross the reopened bridge?",
    "Mayor Lena Ortiz was the first to cross the bridge on a bicycle.",
    LONG_PARAGRAPH + " These words fall outside the window and must not change the vector.",
]


@pytest.fixture(scope="module")
def numpy_model() -> NumpyMiniLM:
    return NumpyMiniLM()


@pytest.fixture(scope="module")
def st_model() -> SentenceTransformer:
    """The reference implementation, loaded once for this module: importing torch is slow."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(bundled_model_path()), device="cpu")


def _reference(model: SentenceTransformer, texts: list[str]) -> np.ndarray:
    vecs = model.encode(texts, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vecs, dtype=np.float32)


# -- without sentence-transformers -------------------------------------------------------


def test_reports_the_same_identity_as_the_sentence_transformers_embedder(
    numpy_model: NumpyMiniLM,
) -> None:
    config = json.loads((bundled_model_path() / "sentence_bert_config.json").read_text())
    assert numpy_model.name == "all-MiniLM-L6-v2"
    assert numpy_model.dim == 384
    assert numpy_model.max_tokens == config["max_seq_length"] == 256


def test_encode_returns_normalised_float32_rows_in_input_order(numpy_model: NumpyMiniLM) -> None:
    vecs = numpy_model.encode_documents(TEXTS, batch_size=4)
    assert vecs.shape == (len(TEXTS), 384)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    # Each text alone (no padding, no reordering) gives the row it got inside the batches.
    for row, text in enumerate(TEXTS):
        np.testing.assert_allclose(numpy_model.encode_documents([text])[0], vecs[row], atol=2e-6)


def test_encode_of_nothing_is_an_empty_matrix(numpy_model: NumpyMiniLM) -> None:
    vecs = numpy_model.encode_documents([])
    assert vecs.shape == (0, 384)
    assert vecs.dtype == np.float32


def test_text_beyond_the_window_is_truncated_not_counted(numpy_model: NumpyMiniLM) -> None:
    longer = LONG_PARAGRAPH + " Something else entirely about volcanoes and penguins."
    counts = numpy_model.count_tokens([LONG_PARAGRAPH, longer, "", "a"])
    assert counts[0] > numpy_model.max_tokens
    assert counts[1] > counts[0]
    assert counts[2:] == [2, 3]  # [CLS] [SEP], and [CLS] a [SEP]
    both = numpy_model.encode_documents([LONG_PARAGRAPH, longer])
    np.testing.assert_allclose(both[0], both[1], atol=1e-6)

    # ...but words up to the 256th piece still count (the tokenizer file alone says 128).
    words = LONG_PARAGRAPH.split()
    sizes = numpy_model.count_tokens([" ".join(words[:n]) for n in range(len(words))])
    prefix = " ".join(words[: max(n for n, size in enumerate(sizes) if size <= 230)])
    endings = [prefix + " volcanoes erupted.", prefix + " penguins swam."]
    assert all(180 < n <= numpy_model.max_tokens for n in numpy_model.count_tokens(endings))
    a, b = numpy_model.encode_documents(endings)
    assert float(a @ b) < 0.9999


def test_gelu_is_the_exact_erf_gelu() -> None:
    grid = np.linspace(-12.0, 12.0, 48_001)
    exact = np.array([x * 0.5 * (1.0 + math.erf(x / math.sqrt(2.0))) for x in grid])
    values = grid.astype(np.float32).reshape(-1, 1)
    _gelu_inplace(values)
    assert np.abs(values[:, 0] - exact).max() < 2e-6


# -- against sentence-transformers -------------------------------------------------------


@pytest.mark.slow
def test_vectors_match_sentence_transformers(
    numpy_model: NumpyMiniLM, st_model: SentenceTransformer
) -> None:
    expected = _reference(st_model, TEXTS)
    got = numpy_model.encode_documents(TEXTS, batch_size=5)
    cosine = (expected * got).sum(axis=1) / (
        np.linalg.norm(expected, axis=1) * np.linalg.norm(got, axis=1)
    )
    assert cosine.min() >= 0.9999, dict(zip(TEXTS, cosine.tolist(), strict=True))
    assert np.abs(expected - got).max() < 1e-4


@pytest.mark.slow
def test_token_vectors_match_sentence_transformers(
    numpy_model: NumpyMiniLM, st_model: SentenceTransformer
) -> None:
    # Sentences are stored with token vectors from the library; questions are matched
    # against them with the numpy runtime's.

    library = SentenceTransformerEmbedder()
    expected = library.encode_sentences(TEXTS, batch_size=5)
    got = numpy_model.encode_sentences(TEXTS, batch_size=3)
    one = library.encode_sentences(TEXTS[:1])
    for e, g in zip(expected.token_ids, got.token_ids, strict=True):
        np.testing.assert_array_equal(e, g)
    assert expected.pieces == got.pieces
    for e, g in zip(expected.tokens, got.tokens, strict=True):
        assert e.shape == g.shape and (e.size == 0 or np.abs(e - g).max() < 1e-4)
    assert np.abs(one.tokens[0] - expected.tokens[0]).max() < 1e-4
    np.testing.assert_allclose(got.vectors, numpy_model.encode_documents(TEXTS), atol=1e-6)


@pytest.mark.slow
def test_token_counts_match_sentence_transformers(
    numpy_model: NumpyMiniLM, st_model: SentenceTransformer
) -> None:
    expected = st_model.tokenizer(TEXTS, add_special_tokens=True, truncation=False)["input_ids"]
    assert numpy_model.count_tokens(TEXTS) == [len(ids) for ids in expected]


def test_both_bundled_embedders_count_no_texts_as_no_counts(
    numpy_model: NumpyMiniLM, st_model: SentenceTransformer
) -> None:
    # Ingest counts only titles it has not met yet, which can be none (a failing tokenizer
    # call here once stopped a store's upgrade to token vectors).
    assert numpy_model.count_tokens([]) == []
    assert SentenceTransformerEmbedder().count_tokens([]) == []


@pytest.mark.slow
def test_ranking_matches_sentence_transformers(
    numpy_model: NumpyMiniLM, st_model: SentenceTransformer
) -> None:
    query = "Who crossed the bridge first when it reopened?"
    documents = [
        "The work cost 48 million dollars, more than the city had planned.",
        "Mayor Lena Ortiz was the first to cross the bridge on a bicycle.",
        "The orchard planted forty new apple trees this spring.",
        "The bridge reopened on Monday after a two-year repair of all its cables.",
        "Ferries carried commuters across the harbor during the repairs.",
        "A bakery sold bridge-shaped pastries.",
    ]
    ours = numpy_model.encode_documents(documents) @ numpy_model.encode_documents([query])[0]
    theirs = _reference(st_model, documents) @ _reference(st_model, [query])[0]
    assert list(np.argsort(-ours)) == list(np.argsort(-theirs))
    assert set(np.argsort(-ours)[:2]) == {1, 3}  # the two about the bridge reopening
    assert int(np.argmin(ours)) == 2  # the orchard is unrelated
