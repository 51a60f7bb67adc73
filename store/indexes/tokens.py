"""Token vectors: each sentence's word pieces as the model saw them, for late interaction.

A sentence's one vector is the mean of its word pieces' vectors, and averaging blurs: a
question whose every word is matched by some word of the sentence scores no higher than one
that merely shares its topic. Kept apart, the last layer's token vectors let the retriever
ask, for each word piece of the question, how well the sentence's best-matching word piece
matches it (MaxSim, as in ColBERT), weighted by how rare the question's piece is. On ReQA
that reranking of the best 20 candidates is worth +0.02 MRR (see the README).

They come out of the forward pass that embeds the sentence anyway, so they cost the ingest
no model time, only storage: each token vector is projected onto the store's 96 principal
directions (fitted once, on the first sentences the store embeds) and kept as int8, 96
bytes a token, ~3.3 KB a sentence (titles included: sentences are embedded under them).
Measured on ReQA, reranking by the sentence alone (odd split, MRR): full 384-d float
vectors 0.8700; 64 directions fitted on a fifth of the sentences 0.8699, as int8 0.8702;
a random 64-d projection 0.8641. With the passage too (even split, the ranking's tuned
weights): 64 directions fitted on the first 400 sentences 0.8391, on a fifth of all 0.8401;
96 directions on the first 400 0.8416, 128 0.8413.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from store.indexes.bm25 import STOPWORDS
from store.indexes.spill import Appender, Spill, file_of

PROJECTED_DIM = 96
# Token vector files up to this size are held in memory once the indexes are read in; a
# question's first touches of a mapped file's pages cost it ~0.2 ms (10k passages: 140 MB).
RESIDENT_TOKENS_MAX = 1 << 30
# The projection is fitted on at most this many token vectors (evenly spaced).
_FIT_ROWS = 100_000


@dataclass
class Encoded:
    """What one forward pass gives for each text: its pooled vector and its word pieces."""

    vectors: np.ndarray  # float32 (n, dim), normalised
    token_ids: list[np.ndarray]  # int32 per text: its word pieces, special tokens left out
    tokens: list[np.ndarray]  # float32 (pieces, dim) per text: their last-layer vectors
    pieces: list[list[str]]  # per text: the word pieces as text ("land", "##ing", "?")


def is_function_piece(piece: str) -> bool:
    """A stopword or punctuation, as a whole word piece (a "##" continuation never is)."""
    if piece.startswith("##"):
        return False
    word = piece.lower()
    return word in STOPWORDS or not any(c.isalnum() for c in word)


def fit_projection(tokens: list[np.ndarray], dim: int, k: int = PROJECTED_DIM) -> np.ndarray:
    """An orthonormal (dim, k) basis: the top principal directions of these token vectors
    (uncentred, as cosines see them), completed at random when they span fewer than k."""
    k = min(k, dim)
    rows = [t for t in tokens if len(t)]
    x = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)
    if len(x) > _FIT_ROWS:
        x = x[np.linspace(0, len(x) - 1, _FIT_ROWS).astype(np.int64)]
    x = _normalised(x)
    basis = np.linalg.svd(x, full_matrices=False)[2][:k].T if len(x) else np.zeros((dim, 0))
    if basis.shape[1] < k:
        rng = np.random.default_rng(0)
        filler = rng.standard_normal((dim, k - basis.shape[1]))
        basis = np.linalg.qr(np.concatenate([basis, filler], axis=1))[0][:, :k]
    return np.ascontiguousarray(basis, dtype=np.float32)


def quantize(tokens: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """Token vectors projected and stored as int8, each row scaled to its largest entry
    (only their directions matter: rows are renormalised when read)."""
    v = _normalised(np.asarray(tokens, dtype=np.float32)) @ projection
    scale = np.maximum(np.abs(v).max(axis=1, keepdims=True), np.float32(1e-12)) / np.float32(127)
    return np.round(v / scale).astype(np.int8)


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))


@dataclass
class QuestionTokens:
    """A question's word pieces, projected as the stored ones, with their IDF (what they
    weigh in MaxSim is the retriever's to say)."""

    ids: np.ndarray  # int32 (pieces,)
    vectors: np.ndarray  # float32 (pieces, k), normalised
    idf: np.ndarray  # float32 (pieces,): each piece's IDF over the store's sentences
    content: np.ndarray  # bool (pieces,): not a stopword or punctuation


class TokenTable:
    """Every sentence's int8 token vectors, in index order: one array and offsets into it,
    the projection they were made with and the IDF of each word piece over the sentences."""

    def __init__(
        self,
        tokens: np.ndarray,
        offsets: np.ndarray,
        projection: np.ndarray,
        idf: np.ndarray,
        inverse_norms: np.ndarray | None = None,
    ) -> None:
        # The file the token vectors are mapped from when they were built into it
        # (store/indexes/spill.py): saving there again writes nothing.
        self.file = file_of(tokens)
        # int8 (all pieces, k). A plain view of a memory map: indexing through np.memmap's
        # subclass costs ~80 us a question in wrapping alone.
        self.tokens = tokens.view(np.ndarray) if isinstance(tokens, np.memmap) else tokens
        self.offsets = offsets  # int64 (sentences + 1,)
        self.projection = projection  # float32 (dim, k)
        self.idf = idf  # float32 (vocabulary,)
        # float32 (all pieces,): 1 / each int8 row's norm, so that a question's cosines are
        # its products scaled, without norming the rows it gathers (~0.1 ms a question).
        self.inverse_norms = _inverse_norms(tokens) if inverse_norms is None else inverse_norms

    @classmethod
    def of(
        cls,
        rows: Iterable[tuple[bytes, bytes] | None],
        projection: np.ndarray,
    ) -> TokenTable:
        """From each sentence's (word piece ids, int8 vectors) as stored (int32 and int8
        bytes), None where it has none."""
        table = TokenTableBuilder(projection)
        for row in rows:
            table.add(row)
        return table.build()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def question(
        self, ids: np.ndarray, tokens: np.ndarray, pieces: list[str]
    ) -> QuestionTokens | None:
        """The question's pieces for MaxSim (the retriever's rerank), or None when it has
        none to match."""
        if len(ids) == 0:
            return None
        vocab = len(self.idf)
        idf = np.where(ids < vocab, self.idf[np.minimum(ids, vocab - 1)], self.idf.max())
        content = np.asarray([not is_function_piece(p) for p in pieces], dtype=bool)
        if len(content) != len(ids):
            content = np.ones(len(ids), dtype=bool)
        vectors = _normalised(_normalised(np.asarray(tokens, np.float32)) @ self.projection)
        return QuestionTokens(
            np.asarray(ids, np.int32),
            vectors.astype(np.float32),
            idf.astype(np.float32),
            content,
        )

    def save(self, folder: Path) -> None:
        if self.file != folder / "sentences.tokens.npy":
            np.save(folder / "sentences.tokens.npy", self.tokens)
        np.save(folder / "sentences.token_offsets.npy", self.offsets)
        np.save(folder / "tokens.projection.npy", self.projection)
        np.save(folder / "tokens.idf.npy", self.idf)
        np.save(folder / "sentences.token_norms.npy", self.inverse_norms)

    @classmethod
    def load(cls, folder: Path, *, mapped: bool = False) -> TokenTable | None:
        """The saved table, None for indexes saved without one. The token vectors are read
        into memory (unless `mapped`) only up to RESIDENT_TOKENS_MAX bytes: past that
        (~3.1 KB a sentence: 14 GB at 4.5M sentences, of which a question reads ~150
        sentences') they stay memory-mapped."""
        path = folder / "sentences.tokens.npy"
        if not path.exists():
            return None
        mode: Literal["r"] | None = "r" if mapped else None
        small = path.stat().st_size <= RESIDENT_TOKENS_MAX
        return cls(
            np.load(path, mmap_mode=None if small and not mapped else "r"),
            np.load(folder / "sentences.token_offsets.npy", mmap_mode=mode),
            np.load(folder / "tokens.projection.npy"),
            np.load(folder / "tokens.idf.npy"),
            np.load(folder / "sentences.token_norms.npy", mmap_mode=mode),
        )


# The builder gathers rows in pieces of about this many bytes.
_PIECE_BYTES = 1 << 26


class TokenTableBuilder:
    """A TokenTable gathered one sentence at a time, holding each row once: in pieces of
    ~64 MB, copied into the one array at the end and freed as they are (the table plus a
    piece). A list of every row's arrays, concatenated, held them twice, plus ~0.3 KB of
    Python objects a row: at 4.5M sentences (14 GB of token vectors) a build was killed
    for want of memory at 21 GB."""

    def __init__(self, projection: np.ndarray, spill: Spill | None = None) -> None:
        """With `spill`, the token vectors are written into its folder as they come (a
        table too large to hold in memory alongside the rest of a build)."""
        self.projection = projection
        self._counts = array("q")
        self._ids = _Pieces(np.int32)
        self._tokens: _Pieces | Appender = (
            _Pieces(np.int8)
            if spill is None
            else spill.appender("sentences.tokens.npy", np.int8, projection.shape[1])
        )

    def add(self, row: tuple[bytes, bytes] | None) -> None:
        """The next sentence's (word piece ids, int8 vectors) as stored, or None."""
        if row is None or not row[0]:
            self._counts.append(0)
            return
        ids, tokens = row
        self._counts.append(len(ids) // 4)
        self._ids.add(ids)
        self._tokens.add(tokens)

    def build(self) -> TokenTable:
        counts = np.frombuffer(self._counts, dtype=np.int64) if self._counts else np.zeros(0)
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        sentences = int((counts > 0).sum())
        del counts
        self._counts = array("q")
        ids = self._ids.joined()
        idf = _idf(ids, sentences)
        del ids
        if isinstance(self._tokens, Appender):
            tokens = self._tokens.finish()
        else:
            tokens = self._tokens.joined().reshape(-1, self.projection.shape[1])
        return TokenTable(tokens, offsets, self.projection, idf)


class _Pieces:
    """Bytes appended in order, kept as ~_PIECE_BYTES pieces until joined into one array."""

    def __init__(self, dtype: type[np.generic]) -> None:
        self.dtype = np.dtype(dtype)
        self.pieces: list[bytearray] = []
        self.current = bytearray()

    def add(self, data: bytes) -> None:
        self.current += data
        if len(self.current) >= _PIECE_BYTES:
            self.pieces.append(self.current)
            self.current = bytearray()

    def joined(self) -> np.ndarray:
        """One array of everything added, freeing each piece once copied (its pages are
        touched only as the pieces are copied in, so the peak is the array plus a piece)."""
        self.pieces.append(self.current)
        self.current = bytearray()
        out = np.empty(sum(len(p) for p in self.pieces), dtype=np.uint8)
        at = 0
        while self.pieces:
            piece = self.pieces.pop(0)
            out[at : at + len(piece)] = np.frombuffer(piece, dtype=np.uint8)
            at += len(piece)
            del piece
        return out.view(self.dtype)


def _inverse_norms(tokens: np.ndarray, piece: int = 1 << 16) -> np.ndarray:
    """1 / the norm of each int8 row, a piece at a time (bounded temporaries: pieces of
    1 << 20 rows took ~0.8 GB, a build's peak at 20k passages, at the same speed)."""
    out = np.empty(len(tokens), dtype=np.float32)
    for start in range(0, len(tokens), piece):
        rows = np.asarray(tokens[start : start + piece], dtype=np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
        out[start : start + piece] = 1.0 / np.maximum(norms, np.float32(1e-12))
    return out


def _idf(ids: np.ndarray, sentences: int) -> np.ndarray:
    """Each word piece's IDF over the sentences, from its count (a piece seldom repeats in a
    sentence; the commonest, which do, score 0 either way)."""
    counts = np.bincount(ids, minlength=1).astype(np.float64) if len(ids) else np.zeros(1)
    n = float(sentences)
    return np.maximum(np.log1p((n - counts + 0.5) / (counts + 0.5)), 0.0).astype(np.float32)
