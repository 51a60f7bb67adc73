"""Test doubles passed in where the real ones would cost a model load: kept under tests/,
never shipped in the packages."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from store.indexes.tokens import Encoded

_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """A deterministic bag-of-words embedder for fast unit tests of the pipeline.

    Texts sharing words get similar vectors; it has no notion of meaning. Token counts are
    words plus two special tokens, like a word-piece model on plain English.
    """

    def __init__(self, dim: int = 64, max_tokens: int = 256, name: str = "hashing-64") -> None:
        self.name = name
        self.dim = dim
        self.max_tokens = max_tokens

    def _bucket(self, word: str) -> int:
        return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little")

    def encode_documents(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                out[row, self._bucket(word) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms

    def encode_query(self, texts: list[str]) -> Encoded:
        return self.encode_sentences(texts)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(_WORD.findall(t)) + 2 for t in texts]

    def piece_ids(self, texts: list[str]) -> list[np.ndarray]:
        return self.encode_sentences(texts).token_ids

    def encode_sentences(self, texts: list[str], batch_size: int = 64) -> Encoded:
        """Each word a token: its id is its bucket, its vector the one-hot of that bucket."""
        token_ids, tokens, pieces = [], [], []
        for text in texts:
            found = _WORD.findall(text.lower())
            pieces.append(found)
            buckets = [self._bucket(w) for w in found]
            ids = np.asarray([b % 65_536 for b in buckets], dtype=np.int32)
            vecs = np.zeros((len(buckets), self.dim), dtype=np.float32)
            vecs[np.arange(len(buckets)), [b % self.dim for b in buckets]] = 1.0
            token_ids.append(ids)
            tokens.append(vecs)
        return Encoded(self.encode_documents(texts, batch_size), token_ids, tokens, pieces)
