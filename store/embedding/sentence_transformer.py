"""The torch runtime: any sentence-transformers model, through the library itself.

sentence-transformers is imported only when a model is loaded: the import alone takes ~10 s.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from store.embedding import DEFAULT_MODEL, model_folder
from store.indexes.tokens import Encoded


class SentenceTransformerEmbedder:
    """Any sentence-transformers model; the default is the bundled all-MiniLM-L6-v2."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        # Loading prints a progress bar per model otherwise, on every CLI call.
        hf_logging.disable_progress_bar()

        folder = model_folder(model)
        location = str(folder) if folder is not None else model  # else a hub name
        self._model = SentenceTransformer(location, device=device)
        self.name = model
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        assert dim is not None
        self.dim = int(dim)
        self.max_tokens = int(self._model.max_seq_length or 256)
        self._tokenizer = self._model.tokenizer

    def encode_documents(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) == 1:
            return self._encode_one(texts[0])
        return self.library_encode(texts, batch_size)

    def library_encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """`SentenceTransformer.encode`, as a program calling the library would."""
        vecs = self._model.encode(
            texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def encode_query(self, texts: list[str]) -> Encoded:
        # The model has no query prompt: a question is encoded as a sentence is.
        return self.encode_sentences(texts)

    def encode_sentences(self, texts: list[str], batch_size: int = 64) -> Encoded:
        if len(texts) == 1:
            import torch

            with torch.inference_mode():
                out = self._model(self._model.preprocess(texts))
            rows: list[dict[str, Any]] = [{name: value[0] for name, value in out.items()}]
        else:
            rows = cast(
                "list[dict[str, Any]]",
                self._model.encode(
                    texts, batch_size=batch_size, output_value=None, convert_to_numpy=False
                ),
            )
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        token_ids, tokens, pieces = [], [], []
        for i, row in enumerate(rows):
            vectors[i] = row["sentence_embedding"].float().numpy()
            real = row["attention_mask"].bool()
            ids = row["input_ids"][real].numpy().astype(np.int32)
            # [CLS] and [SEP] stand for the whole text, not a word of it.
            token_ids.append(ids[1:-1])
            tokens.append(row["token_embeddings"][real].float().numpy()[1:-1])
            pieces.append(self._tokenizer.convert_ids_to_tokens(ids[1:-1].tolist()))
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return Encoded(vectors, token_ids, tokens, pieces)

    def piece_ids(self, texts: list[str]) -> list[np.ndarray]:
        enc = self._tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)
        return [np.asarray(ids, dtype=np.int32) for ids in enc["input_ids"]]

    def _encode_one(self, text: str) -> np.ndarray:
        """One text (a question) through the model's own preprocessing and modules.

        `SentenceTransformer.encode` wraps the same two calls in per-call work (sorting by
        length, batching, device moves, output conversion) that costs ~1 ms of a question's
        ~12 ms here; the vector is the same (tested).
        """
        import torch

        with torch.inference_mode():
            features = self._model.preprocess([text])
            out = self._model(features)["sentence_embedding"]
        vec = out.float().numpy()
        vec /= np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vec, dtype=np.float32)

    def count_tokens(self, texts: list[str]) -> list[int]:
        # Counting is the point, so a text over the window is expected here: verbose=False
        # keeps transformers from warning about it on the user's terminal.
        if not texts:  # the tokenizer fails on an empty batch
            return []
        enc = self._tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)[
            "input_ids"
        ]
        return [len(ids) for ids in enc]
