"""BM25 over sparse matrices: built once from the store's texts, scored in a few milliseconds.

Each document's per-term BM25 weight is computed at build time and kept in a CSC matrix
(terms are columns), so scoring a query is summing a handful of columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    from store.indexes.seams import Allowed

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
# Words so common in questions and prose that matching them says nothing; dropping them
# keeps scoring fast on big stores (their columns are the longest).
STOPWORDS = frozenset(
    """a an the of in on at to for from by with and or but is are was were be been being am
    do does did done has have had having it its it's this that these those there here as
    into onto than then so such not no nor can could would should will shall may might must
    what which who whom whose when where why how i you he she we they me him her us them my
    your his our their about over under up down out off again also just very s t""".split()
)


# Bump when tokenize() changes: a saved index built with other tokens must be rebuilt.
TOKENIZER_VERSION = 2

# Suffixes folded after the plural: (suffix, replacement, shortest word it applies to).
# Light on purpose: "operations" and "operated" meet at "operat", but short words like
# "red", "bring" or "ring" keep their letters. On ReQA it lifts BM25 by +0.01 MRR.
_SUFFIXES = (
    ("ational", "ate", 8),
    ("ization", "ize", 8),
    ("ation", "ate", 7),
    ("ness", "", 7),
    ("ment", "", 8),
    ("ingly", "", 8),
    ("edly", "", 7),
    ("ing", "", 6),
    ("ed", "", 5),
    ("ly", "", 6),
    ("er", "", 6),
)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens, lightly stemmed, stopwords removed."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if tok in STOPWORDS:
            continue
        out.append(stem(tok))
    return out


def count_tokens(text: str) -> int:
    """len(tokenize(text)), without stemming (which drops no token): a document's length."""
    return sum(1 for tok in _TOKEN.findall(text.lower()) if tok not in STOPWORDS)


def fold(tok: str) -> str:
    """Plural and possessive endings only: "cities" -> "city", "boxes" -> "box"."""
    if len(tok) > 4 and tok.endswith("ies"):
        return tok[:-3] + "y"
    if len(tok) > 4 and tok.endswith(("ches", "shes", "sses", "xes")):
        return tok[:-2]
    if len(tok) > 3 and tok.endswith("s") and not tok.endswith(("ss", "us", "is")):
        return tok[:-1]
    return tok


def stem(tok: str) -> str:
    """A small English stemmer: the plural fold, then one common suffix, then a final e.

    Not a linguist's stemmer; it only has to send a question's word and the article's
    word to the same token ("located"/"location", "operations"/"operated").
    """
    tok = fold(tok)
    if tok.isdigit():
        return tok
    for suffix, replacement, shortest in _SUFFIXES:
        if len(tok) >= shortest and tok.endswith(suffix):
            tok = tok[: -len(suffix)] + replacement
            if suffix in ("ing", "ed") and len(tok) > 3 and tok[-1] == tok[-2] not in "lsz":
                tok = tok[:-1]  # "stopped" -> "stop", but "called" keeps "call"
            break
    if len(tok) > 4 and tok.endswith("e"):
        tok = tok[:-1]
    return tok


# Query words whose postings are longer than this take part in the lexical candidates with
# their HEAD best-weighted documents only (their weight still counts in full in every score):
# the cost of a question then follows the store's size no more. Under the cap the candidates
# are exact; the ReQA store (10k sentences) has none this long (its longest: 680).
HEAD = 1024


class Matches:
    """BM25 scores for one query: exact for any document (`at`), and candidate documents
    (`docs`, ascending) taken from each query word's postings, or from its HEAD
    best-weighted documents when it has more. `scores` beside `docs` sum the weights seen
    in those lists: exact unless a word's list was cut at HEAD. Documents outside `allowed`
    score 0."""

    def __init__(
        self,
        columns: list[tuple[np.ndarray, np.ndarray]],
        docs: np.ndarray,
        scores: np.ndarray,
        allowed: np.ndarray | None = None,
    ) -> None:
        self._columns = columns  # per query term: (document ids ascending, weights)
        self._allowed = allowed
        docs = np.asarray(docs, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float32)
        if allowed is not None:
            keep = allowed[docs]
            docs, scores = docs[keep], scores[keep]
        self.docs = docs
        self.scores = scores

    @classmethod
    def empty(cls) -> Matches:
        return cls([], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.docs)

    def at(self, positions: np.ndarray) -> np.ndarray:
        """The exact scores of these documents (0 where no query word occurs)."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.zeros(positions.shape, dtype=np.float32)
        for ids, weights in self._columns:
            if ids.size == 0:
                continue
            slot = np.minimum(np.searchsorted(ids, positions), ids.size - 1)
            out += np.where(ids[slot] == positions, weights[slot], 0.0).astype(np.float32)
        if self._allowed is not None:
            out[~self._allowed[positions]] = 0.0
        return out

    def where(self, allowed: np.ndarray) -> Matches:
        """Only the documents `allowed` (a boolean array over every document) lets through."""
        mask = allowed if self._allowed is None else allowed & self._allowed
        return Matches(self._columns, self.docs, self.scores, mask)

    def top(self, k: int) -> np.ndarray:
        """The k best-scoring documents with a positive score (unordered): the 4k best
        candidates by `scores`, rescored exactly (`at`) when a list was cut at HEAD."""
        positive = np.flatnonzero(self.scores > 0)
        if positive.size <= k:
            return self.docs[positive]
        wide = min(positive.size, 4 * k)
        pick = positive[np.argpartition(-self.scores[positive], wide - 1)[:wide]]
        exact = self.at(self.docs[pick]) if self._cut else self.scores[pick]
        return self.docs[pick[np.argpartition(-exact, k - 1)[:k]]]

    @property
    def _cut(self) -> bool:
        return any(ids.size > HEAD for ids, _ in self._columns)


class Rows:
    """The BM25 weights of a fixed set of documents: their scores for any query at once."""

    def __init__(self, weights: sparse.csc_matrix) -> None:
        self.weights = weights

    def scores(self, terms: list[int]) -> np.ndarray:
        """Each document's score for these terms (repeats count again), summed column by
        column: scipy's column slicing costs ~0.3 ms a call, more than the sums."""
        w = self.weights
        out = np.zeros(w.shape[0], dtype=np.float32)
        for t in terms:
            lo, hi = w.indptr[t], w.indptr[t + 1]
            out[w.indices[lo:hi]] += w.data[lo:hi]  # a column holds each row once
        return out


class BM25:
    """A BM25 index over documents numbered 0..n-1."""

    def __init__(
        self,
        weights: sparse.csc_matrix,
        vocab: dict[str, int],
        idf: np.ndarray,
        k1: float,
        b: float,
        heads: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self.weights = weights
        # Columns longer than HEAD: their HEAD best-weighted documents, ascending, and the
        # weights there (looking those up in the full column cost ~0.4 ms a question at 4.5M).
        self.heads = _heads(weights) if heads is None else heads
        self.vocab = vocab
        self.idf = idf
        self.k1 = k1
        self.b = b

    @property
    def size(self) -> int:
        return int(self.weights.shape[0])

    @classmethod
    def build(cls, docs: Iterable[str], k1: float = 0.6, b: float = 0.3) -> BM25:
        """Index `docs`. k1 0.6 and b 0.3 (low saturation, mild length penalty) won on the
        ReQA even split over 0.9/0.4 and 1.2/0.75 with title + sentence documents."""
        vocab: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        counts: list[int] = []
        lengths: list[int] = []
        for row, doc in enumerate(docs):
            toks = tokenize(doc)
            lengths.append(len(toks))
            tf: dict[int, int] = {}
            for tok in toks:
                col = vocab.setdefault(tok, len(vocab))
                tf[col] = tf.get(col, 0) + 1
            rows.extend([row] * len(tf))
            cols.extend(tf.keys())
            counts.extend(tf.values())
        n_docs = len(lengths)
        dl = np.asarray(lengths, dtype=np.float32)
        avgdl = float(dl.mean()) if n_docs else 1.0
        r = np.asarray(rows, dtype=np.int64)
        c = np.asarray(cols, dtype=np.int64)
        tf_arr = np.asarray(counts, dtype=np.float32)
        df = np.bincount(c, minlength=len(vocab)).astype(np.float32)
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = k1 * (1.0 - b + b * dl[r] / max(avgdl, 1e-9)) if n_docs else np.zeros(0)
        w = idf[c] * tf_arr * (k1 + 1.0) / (tf_arr + norm)
        weights = sparse.csc_matrix(
            (w.astype(np.float32), (r, c)), shape=(n_docs, len(vocab)), dtype=np.float32
        )
        return cls(weights, vocab, idf, k1, b)

    def query_terms(self, query: str) -> list[int]:
        """The query's known terms as column numbers (repeats kept: they weigh more)."""
        return self.terms(tokenize(query))

    def terms(self, words: list[str]) -> list[int]:
        """These `tokenize`d words' column numbers, where the index knows them."""
        return [self.vocab[t] for t in words if t in self.vocab]

    def scores(self, terms: list[int]) -> np.ndarray:
        """BM25 score of every document for these terms."""
        if not terms or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        cols = self.weights[:, terms]
        return np.asarray(cols.sum(axis=1), dtype=np.float32).ravel()

    def matches(self, terms: list[int], allowed: Allowed | None = None) -> Matches:
        """The query's scores and lexical candidates (see `Matches`), only those `allowed`
        lets through: the cost follows the query words' postings up to HEAD each, not the
        store's size (a dense array of every document's score costs ~20 ms a question at
        4.5M sentences)."""
        found = self._matches(terms)
        return found if allowed is None else found.where(allowed.mask)

    def _matches(self, terms: list[int]) -> Matches:
        if not terms or self.size == 0:
            return Matches.empty()
        w = self.weights
        columns = [
            (w.indices[w.indptr[t] : w.indptr[t + 1]], w.data[w.indptr[t] : w.indptr[t + 1]])
            for t in terms
        ]
        parts = [self._head(t, ids, ws) for t, (ids, ws) in zip(terms, columns, strict=True)]
        if len(parts) == 1:
            return Matches(columns, *parts[0])
        ids = np.concatenate([p[0] for p in parts])
        docs, inverse = np.unique(ids, return_inverse=True)
        weights = np.concatenate([p[1] for p in parts])
        return Matches(columns, docs, np.bincount(inverse, weights=weights))

    def _head(self, term: int, ids: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
        """A query word's candidate documents (ascending) and its weights in them."""
        return self.heads.get(term, (ids, weights))

    def rows(self, positions: np.ndarray) -> Rows:
        """These documents' weights, to score them for many queries (a fixed sample)."""
        return Rows(self.weights[np.asarray(positions, dtype=np.int64)].tocsc())

    def max_score(self, terms: list[int]) -> float:
        """An upper bound of a document's score: every term matched, at full weight."""
        return float(sum(self.idf[t] for t in terms) * (self.k1 + 1.0))

    def unknown_share(self, words: list[str]) -> float:
        """The IDF-weighted share of these `tokenize`d words no document holds (`unknown_share`)."""
        return unknown_share(self.vocab, self.idf, words)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # Plain .npy files, not save_npz: reading a zip member copies it in small chunks
        # and checks its CRC, 3.5 s for a million passages' two matrices against ~0.5 s.
        w = self.weights
        for part in ("data", "indices", "indptr"):
            np.save(folder / f"weights.{part}.npy", getattr(w, part))
        cols = sorted(self.heads)
        np.save(folder / "head_terms.npy", np.asarray(cols, dtype=np.int64))
        np.save(
            folder / "head_docs.npy",
            np.stack([self.heads[c][0] for c in cols]) if cols else np.zeros((0, HEAD), np.int32),
        )
        np.save(
            folder / "head_weights.npy",
            np.stack([self.heads[c][1] for c in cols]) if cols else np.zeros((0, HEAD), np.float32),
        )
        np.save(folder / "idf.npy", self.idf)
        terms = sorted(self.vocab, key=self.vocab.__getitem__)
        (folder / "vocab.json").write_text(json.dumps(terms), encoding="utf-8")
        (folder / "params.json").write_text(
            json.dumps(
                {"k1": self.k1, "b": self.b, "version": TOKENIZER_VERSION, "shape": w.shape}
            ),
            encoding="utf-8",
        )

    @classmethod
    def load(cls, folder: Path, *, mapped: bool = False) -> BM25:
        """The index saved in `folder`. `mapped`: its postings memory-mapped instead of read,
        so that loading costs nothing and a question reads only its words' pages."""
        mode: Literal["r"] | None = "r" if mapped else None
        params = json.loads((folder / "params.json").read_text(encoding="utf-8"))
        if params.get("version") != TOKENIZER_VERSION:
            raise ValueError(
                f"BM25 index in {folder} has tokenizer version {params.get('version')}, "
                f"this qabot uses {TOKENIZER_VERSION}; rebuild it"
            )
        terms = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        if "shape" in params:
            parts = [
                np.load(folder / f"weights.{p}.npy", mmap_mode=mode)
                for p in ("data", "indices", "indptr")
            ]
            weights = sparse.csc_matrix(tuple(parts), shape=tuple(params["shape"]), copy=False)
        else:  # saved before 2026-12-02
            weights = sparse.load_npz(folder / "weights.npz").tocsc()
        head_docs = np.load(folder / "head_docs.npy", mmap_mode=mode)
        head_weights = np.load(folder / "head_weights.npy", mmap_mode=mode)
        heads = dict(
            zip(
                np.load(folder / "head_terms.npy").tolist(),
                zip(head_docs, head_weights, strict=True),
                strict=True,
            )
        )
        return cls(
            weights,
            {t: i for i, t in enumerate(terms)},
            np.load(folder / "idf.npy"),
            float(params["k1"]),
            float(params["b"]),
            heads,
        )


def unknown_share(vocab: Mapping[str, int], idf: np.ndarray, words: list[str]) -> float:
    """How much of a `tokenize`d query the store has never seen: the IDF-weighted share of
    its distinct words that no document holds (an unknown word weighs as the rarest known),
    over a BM25 index's `vocab` and `idf`.

    "How many moons does Jupiter have?" over articles that never name Jupiter is half
    unknown; a question the articles answer almost never has an unknown word.
    """
    toks = set(words)
    if not toks or idf.size == 0:
        return 0.0
    rarest = float(idf.max())
    weights = [float(idf[vocab[t]]) if t in vocab else rarest for t in toks]
    unknown = sum(w for t, w in zip(toks, weights, strict=True) if t not in vocab)
    return unknown / max(sum(weights), 1e-9)


def _heads(weights: sparse.csc_matrix) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """For each column with more than HEAD documents, its HEAD best-weighted (ascending)
    and their weights."""
    lengths = np.diff(weights.indptr)
    heads = {}
    for col in np.flatnonzero(lengths > HEAD).tolist():
        lo, hi = weights.indptr[col], weights.indptr[col + 1]
        best = np.argpartition(-weights.data[lo:hi], HEAD - 1)[:HEAD]
        best.sort()  # a column's documents are ascending, so its positions keep them so
        heads[col] = (weights.indices[lo:hi][best], weights.data[lo:hi][best])
    return heads
