"""The seams the retriever searches through, each a small Protocol whose first
implementation is today's code: `VectorIndex` (a unit's FAISS-backed vectors, `UnitIndex`)
and `LexicalIndex` (`BM25`). Another engine plugs in by meeting the same contract; where a
generation's indexes come from is `source.IndexSource`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Allowed:
    """What a search may return: the asked collections by name (what an engine filters
    on), and the same as a boolean array over this unit's positions (what a local index
    filters with)."""

    collections: tuple[str, ...]
    mask: np.ndarray


class VectorIndex(Protocol):
    """Normalised vectors by position, searched by inner product."""

    def nearest(self, query: np.ndarray, k: int, allowed: Allowed | None = None) -> np.ndarray:
        """Positions (int64, in no order) of the k vectors nearest `query` among those
        `allowed` lets through (None: all)."""
        ...

    def scores(self, query: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The inner products (float32) of `query` with the vectors at these positions, as
        searches score them, for scoring candidates."""
        ...

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """The vectors at these positions (float32, (len(positions), dim)) as searches
        score them (the z-scores' sample)."""
        ...


class Matches(Protocol):
    """One query's word matches: candidates, and exact scores for any given documents."""

    def top(self, k: int) -> np.ndarray:
        """The k best-scoring documents with a positive score (positions, unordered)."""
        ...

    def at(self, positions: np.ndarray) -> np.ndarray:
        """The exact scores (float32) of these documents (0 where no query word occurs)."""
        ...


class LexicalIndex(Protocol):
    """Word matches over documents by position (the `Matches` contract: candidates, and
    exact scores for any given documents)."""

    def terms(self, words: list[str]) -> list[int]:
        """These `tokenize`d words' term numbers, where the index knows them (repeats kept)."""
        ...

    def query_terms(self, query: str) -> list[int]:
        """The query's known terms (`tokenize`, then `terms`)."""
        ...

    def matches(self, terms: list[int], allowed: Allowed | None = None) -> Matches:
        """The candidates for these terms and every allowed document's exact score (0
        outside `allowed`)."""
        ...

    def max_score(self, terms: list[int]) -> float:
        """An upper bound of any document's score for these terms."""
        ...

    def unknown_share(self, words: list[str]) -> float:
        """The IDF-weighted share of these `tokenize`d words that no document holds."""
        ...


class SampleScores(Protocol):
    """The lexical weights of a fixed sample of documents (the z-scores' population)."""

    def scores(self, terms: list[int]) -> np.ndarray:
        """Each sampled document's score for these terms (repeats count again)."""
        ...
