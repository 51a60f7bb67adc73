"""SentenceTransformerEmbedder: a question encoded alone gets the library's own vector."""

from __future__ import annotations

import numpy as np
import pytest

from tests.store.test_minilm_numpy import TEXTS

pytestmark = pytest.mark.slow


def test_one_text_gets_the_vector_sentence_transformers_encode_gives(real_embedder) -> None:  # type: ignore[no-untyped-def]
    batch = real_embedder.library_encode(TEXTS, batch_size=8)
    for row, text in enumerate(TEXTS):
        alone = real_embedder.encode_documents([text])
        assert alone.shape == (1, 384) and alone.dtype == np.float32
        np.testing.assert_allclose(alone[0], batch[row], atol=2e-6, err_msg=repr(text[:40]))
        np.testing.assert_allclose(alone, real_embedder.library_encode([text]), atol=1e-6)


def test_many_texts_are_encoded_by_the_library_in_input_order(real_embedder) -> None:  # type: ignore[no-untyped-def]
    texts = ["Who led the bridge repair?", "", "The mayor crossed first."]
    many = real_embedder.encode_documents(texts)
    assert many.shape == (3, 384)
    for row, text in enumerate(texts):
        np.testing.assert_allclose(many[row], real_embedder.encode_documents([text])[0], atol=2e-6)
