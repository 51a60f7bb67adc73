"""The seams the retriever searches through, each a small Protocol whose first
implementation is today's code: `VectorIndex` (a unit's FAISS-backed vectors, `UnitIndex`)
and `LexicalIndex` (`BM25`). Another engine plugs in by meeting the same contract.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from store.indexes.bm25 import Matches


class VectorIndex(Protocol):
    """Normalised vectors by position, searched by inner product."""

    def nearest(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """Positions (int64, in no order) of the k vectors nearest `query` among those
        `allowed` (a boolean array over every position; None: all) lets through."""
        ...

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The vectors at these positions (float32, (len(positions), dim)) as searches
        score them, for scoring candidates."""
        ...


class LexicalIndex(Protocol):
    """Word matches over documents by position (the `Matches` contract: candidates, and
    exact scores for any given documents)."""

    def terms(self, words: list[str]) -> list[int]:
        """These `tokenize`d words' term numbers, where the index knows them (repeats kept)."""
        ...

    def matches(self, terms: list[int]) -> Matches:
        """The candidates for these terms and every document's exact score."""
        ...

    def max_score(self, terms: list[int]) -> float:
        """An upper bound of any document's score for these terms."""
        ...
