"""The answer checker: does one of these sentences answer the question, or are they only about it?

A small model trained here (`qabot train checker`, retriever/checker_training.py) over what
the question path has already computed: the question's word-piece vectors and each candidate
sentence's stored token vectors (store/indexes/tokens.py), and the ranking's own signals.
For each of the best `candidates` sentences it aligns every question piece with the
sentence's pieces and every sentence piece with the question's (soft attention over their
cosines, as in decomposable attention), pools what matched and what did not into one vector
per side, and a small network gives the sentence a logit; one more logit stands for "none of
them answers". Trained listwise on the even split: a softmax over [none, the candidates]
whose target is the gold sentence for ReQA's questions and "none" for SQuAD 2.0's
unanswerable ones.

The stored token vectors live in each store's own 96 principal directions, so the model's
weights are kept in the embedder's 384-d space and composed with the store's projection
when first used (the same weights read any store alike). It runs in numpy, in well under a
millisecond a candidate (no torch, no network).

`CheckerReranker` runs after the MaxSim rerank: the probability that some read candidate
answers (1 - P(none)) is mixed into the confidence that abstention reads, mapped back onto
the scale of `ABSTAIN_LEVELS` so that QABOT_ABSTAIN keeps its meaning; the best `depth` may
be reordered by `rank_weight` x their log-odds (they stay above the rest).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retriever.errors import CheckerError
from retriever.query import Query
from retriever.rerank import Reranker
from retriever.scoring import Scored
from retriever.snapshot import Snapshot
from store.indexes.tokens import QuestionTokens, TokenTable

CHECKER_DIR = Path(__file__).parent / "data"
WEIGHTS_FILE = "checker.safetensors"
CONFIG_FILE = "checker.json"
# Per candidate: the ranking score, the confidence, the sentence's and its passage's cosine
# and BM25 (over the best the words could reach), the score and confidence against the
# best candidate's, and 1 / (1 + its rank).
SCALARS = 9
IDF_SCALE = 10.0  # the pieces' IDF enter divided by this
MASKED = np.float32(-1e4)


def checker_shipped(folder: Path = CHECKER_DIR) -> bool:
    """Whether trained checker weights lie in `folder`."""
    return (folder / WEIGHTS_FILE).exists() and (folder / CONFIG_FILE).exists()


@dataclass(frozen=True)
class Combination:
    """How the checker's verdict joins the ranking and the confidence (chosen on the held-out
    even articles by `qabot train checker`, recorded in checker.json)."""

    depth: int  # candidates that may be reordered, best first by the ranking so far
    rank_weight: float  # ranking score += this x log-odds, among those
    confidence_weight: float  # confidence = (confidence + this x P(answered)) / (1 + this)
    # Piecewise-linear map of that mix onto the ABSTAIN_LEVELS scale: the mix's lines that
    # decline the held-out share each level declines without the checker, and those levels.
    knots_from: tuple[float, ...]
    knots_to: tuple[float, ...]

    def calibrate(self, mixed: np.ndarray) -> np.ndarray:
        """The mixed confidences on the abstention levels' scale (linear past the ends)."""
        xs, ys = np.asarray(self.knots_from), np.asarray(self.knots_to)
        out = np.interp(mixed, xs, ys)
        lo_slope = (ys[1] - ys[0]) / max(xs[1] - xs[0], 1e-9)
        hi_slope = (ys[-1] - ys[-2]) / max(xs[-1] - xs[-2], 1e-9)
        out = np.where(mixed < xs[0], ys[0] + (mixed - xs[0]) * lo_slope, out)
        out = np.where(mixed > xs[-1], ys[-1] + (mixed - xs[-1]) * hi_slope, out)
        return out.astype(np.float32)


# -- what the checker reads (training reads the same) ------------------------------------


def candidate_scalars(query: Query, scored: Scored, top: np.ndarray) -> np.ndarray:
    """The ranking's signals for the candidates at `top` (best first), (len(top), SCALARS)."""
    return derive_scalars(ranking_signals(query, scored, top))


def ranking_signals(query: Query, scored: Scored, top: np.ndarray) -> np.ndarray:
    """The raw signals of the candidates at `top`, (len(top), 6): the score, the confidence,
    the sentence's and its passage's cosine and BM25 (over the best the words could reach)."""
    c = scored.candidates
    zeros = np.zeros(len(top), dtype=np.float32)

    def signal(values: np.ndarray | None, scale: float = 1.0) -> np.ndarray:
        return zeros if values is None else values[top].astype(np.float32) / np.float32(scale)

    return np.stack(
        [
            scored.score[top].astype(np.float32),
            scored.confidence[top].astype(np.float32),
            signal(c.sentence_dense),
            signal(c.passage_dense),
            signal(c.sentence_bm25, query.sentence_bm25_max),
            signal(c.passage_bm25, query.passage_bm25_max),
        ],
        axis=1,
    ).astype(np.float32)


def derive_scalars(raw: np.ndarray) -> np.ndarray:
    """`ranking_signals` of candidates best first, with the score and confidence against the
    first's and 1 / (1 + the rank), (len(raw), SCALARS)."""
    if len(raw) == 0:
        return np.zeros((0, SCALARS), dtype=np.float32)
    rank = np.arange(len(raw), dtype=np.float32)
    return np.concatenate(
        [raw, raw[:, :2] - raw[:1, :2], (1.0 / (1.0 + rank))[:, None]], axis=1
    ).astype(np.float32)


def question_features(tokens: QuestionTokens) -> np.ndarray:
    """Each question piece's IDF (scaled) and whether it is a content word, (pieces, 2)."""
    return np.stack(
        [tokens.idf.astype(np.float32) / np.float32(IDF_SCALE), tokens.content.astype(np.float32)],
        axis=1,
    )


def sentence_tokens(
    table: TokenTable, positions: np.ndarray, max_pieces: int
) -> tuple[np.ndarray, np.ndarray]:
    """The sentences' first `max_pieces` token vectors, normalised and padded,
    (len(positions), n, k), and which are real, (len(positions), n)."""
    lo = table.offsets[positions].astype(np.int64)
    lengths = np.minimum(table.offsets[positions + 1] - lo, max_pieces).astype(np.int64)
    width = max(1, int(lengths.max()) if len(lengths) else 1)
    k = table.tokens.shape[1]
    out = np.zeros((len(positions), width, k), dtype=np.float32)
    mask = np.zeros((len(positions), width), dtype=np.float32)
    total = int(lengths.sum())
    if total:
        first = np.cumsum(lengths) - lengths
        at = np.repeat(lo - first, lengths) + np.arange(total)
        rows = np.asarray(table.tokens[at], dtype=np.float32) * table.inverse_norms[at][:, None]
        which = np.repeat(np.arange(len(positions)), lengths)
        col = np.arange(total) - np.repeat(first, lengths)
        out[which, col] = rows
        mask[which, col] = 1.0
    return out, mask


# -- the model, in numpy ------------------------------------------------------------------


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form (as trained: torch's approximate="tanh")."""
    return 0.5 * x * (1.0 + np.tanh(np.float32(0.7978845608) * (x + np.float32(0.044715) * x**3)))


def _softmax(x: np.ndarray, axis: int, scale: np.ndarray | float = 1.0) -> np.ndarray:
    x = x * scale
    x -= x.max(axis=axis, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=axis, keepdims=True)
    return x


class _Composed:
    """The weights that read 384-d token vectors, composed with one store's projection
    (so they read its 96-d stored vectors directly)."""

    def __init__(self, t: dict[str, np.ndarray], projection: np.ndarray) -> None:
        p = projection.astype(np.float32)  # (dim, k)
        self.projection = projection
        self.q = t["q.weight"] @ p  # (h, k)
        self.a = t["a.weight"] @ p
        self.u = t["u.weight"] @ p  # (r, k)
        self.s = t["s.weight"] @ p
        self.b = t["b.weight"] @ p
        # Stacked for one product a side: [a, u, s] for sentences, [q, b, u] for questions.
        self.sentence_side = np.concatenate([self.a, self.u, self.s])
        self.question_side = np.concatenate([self.q, self.b, self.u])


class AnswerChecker:
    """The trained checker, in numpy: `read(...)` gives [none, candidates...] logits."""

    def __init__(self, folder: Path = CHECKER_DIR) -> None:
        """`folder` holds checker.safetensors and checker.json."""
        from safetensors.numpy import load_file

        weights, config_path = folder / WEIGHTS_FILE, folder / CONFIG_FILE
        if not weights.exists() or not config_path.exists():
            raise CheckerError(
                f"no answer checker in {folder} (checker.safetensors and checker.json); "
                "train one with `qabot train checker` or set QABOT_CHECKER=off"
            )
        self.config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
        model = self.config["model"]
        if model.get("kind") != "interaction":
            raise CheckerError(
                f"{config_path} is not an interaction checker; retrain it with "
                "`qabot train checker` or set QABOT_CHECKER=off"
            )
        self.candidates = int(model["candidates"])
        self.max_pieces = int(model["max_pieces"])
        self.dim = int(model["dim"])
        c = self.config["combination"]
        self.combination = Combination(
            depth=int(c["depth"]),
            rank_weight=float(c["rank_weight"]),
            confidence_weight=float(c["confidence_weight"]),
            knots_from=tuple(float(v) for v in c["knots_from"]),
            knots_to=tuple(float(v) for v in c["knots_to"]),
        )
        self._t = {k: v.astype(np.float32) for k, v in load_file(str(weights)).items()}
        self._composed: _Composed | None = None

    def _weights_for(self, projection: np.ndarray) -> _Composed:
        composed = self._composed
        if composed is None or composed.projection is not projection:
            composed = self._composed = _Composed(self._t, projection)
        return composed

    def read(
        self,
        projection: np.ndarray,
        question: np.ndarray,
        question_feats: np.ndarray,
        question_vector: np.ndarray,
        sentences: np.ndarray,
        mask: np.ndarray,
        scalars: np.ndarray,
    ) -> np.ndarray:
        """Logits [none, each sentence], (1 + K,), for one question: its pieces' stored-space
        vectors (m, k) and features (m, 2), its 384-d vector, the sentences' token vectors
        (K, n, k) with their mask (K, n), and their `candidate_scalars` (K, SCALARS)."""
        t, w = self._t, self._weights_for(projection)
        h = w.q.shape[0]
        q = question.astype(np.float32)
        s = sentences
        k, n = s.shape[0], s.shape[1]
        cos = np.einsum("id,knd->kin", q, s)  # (K, m, n)
        s_bias = (mask[:, None, :] - 1.0) * np.float32(1e4)
        cs = cos + s_bias
        best_s = cs.max(axis=2)  # (K, m): each question piece's best match
        att = _softmax(cs, axis=2, scale=t["tq"])
        # Products with what each side found in the other are taken before the attention
        # sums them (one product a piece instead of one a piece and candidate).
        s_all = (s.reshape(k * n, -1) @ w.sentence_side.T).reshape(k, n, -1)
        q_all = q @ w.question_side.T
        seen = att @ s_all[..., :-h]  # (K, m, h + r): a and u of what each piece found
        qu = q_all[:, 2 * h :]  # (m, r)
        hq = (
            (q_all[:, :h] + t["q.bias"])[None]
            + seen[..., :h]
            + (qu[None] * seen[..., h:]) @ t["p.weight"].T
            + best_s[..., None] * t["c.weight"][:, 0]
            + (question_feats @ t["f.weight"].T)[None]
        )
        gq = _gelu(hq) @ t["gq.weight"].T + t["gq.bias"]  # (K, m, h)
        pool = _softmax(gq @ t["pq.weight"][0] + t["pq.bias"][0], axis=1)  # (K, m)
        vq = np.einsum("km,kmh->kh", pool, gq)
        best_q = cos.max(axis=1)  # (K, n): each sentence piece's best match
        bt = _softmax(cos, axis=1, scale=t["ts"])
        # b and u of the question as each sentence piece sees it (K, n, h + r)
        found = np.einsum("kmn,mx->knx", bt, q_all[:, h:])
        su = s_all[..., h : h + w.u.shape[0]]
        hs = (
            s_all[..., -h:]
            + t["s.bias"]
            + found[..., :h]
            + (su * found[..., h:]) @ t["sp.weight"].T
            + best_q[..., None] * t["sc.weight"][:, 0]
        )
        gs = _gelu(hs) @ t["gs.weight"].T + t["gs.bias"]  # (K, n, h)
        vs = np.where(mask[..., None] > 0, gs, MASKED).max(axis=1)  # (K, h)
        qt = np.tanh(question_vector.astype(np.float32) @ t["qt.weight"].T + t["qt.bias"])
        kind = np.repeat(qt[None], len(s), axis=0)
        x = np.concatenate([vq, vs, kind, scalars], axis=1)
        z = _gelu(x @ t["o1.weight"].T + t["o1.bias"]) @ t["o2.weight"][0] + t["o2.bias"][0]
        none = np.concatenate([qt, scalars[:1, 1]]) @ t["none.weight"][0] + t["none.bias"][0]
        return np.concatenate([[none], z]).astype(np.float32)

    def verdict(
        self, snapshot: Snapshot, query: Query, scored: Scored
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(the best candidates it read, their logits [none, each]), or None when the
        question or the store has no token vectors to read."""
        table = snapshot.indexes.sentences.tokens
        if query.tokens is None or table is None or query.vector is None:
            return None
        if table.projection.shape[0] != self.dim:
            return None  # another model's store: nothing it was trained to read
        count = min(self.candidates, len(scored.score))
        if count == 0:
            return None
        top = np.argsort(-scored.score, kind="stable")[:count]
        positions = scored.candidates.positions[top].astype(np.int64)
        s, mask = sentence_tokens(table, positions, self.max_pieces)
        if not mask.any():
            return None
        logits = self.read(
            table.projection,
            query.tokens.vectors,
            question_features(query.tokens),
            query.vector,
            s,
            mask,
            candidate_scalars(query, scored, top),
        )
        return top, logits


def answered(logits: np.ndarray) -> tuple[np.ndarray, float]:
    """From [none, candidates...] logits: each candidate's log-odds of being the answer, and
    the probability that one of them is (1 - P(none))."""
    z = logits.astype(np.float64)
    log_total = float(np.logaddexp.reduce(z))
    log_p = z[1:] - log_total
    p = np.exp(log_p)
    odds = log_p - np.log(np.clip(1.0 - p, 1e-12, None))
    return odds.astype(np.float32), float(1.0 - np.exp(z[0] - log_total))


class CheckerReranker:
    """A `Reranker`: the one before it (MaxSim), then the checker on the best candidates."""

    def __init__(self, checker: AnswerChecker, before: Reranker) -> None:
        self.checker = checker
        self.before = before

    def rerank(self, snapshot: Snapshot, query: Query, scored: Scored) -> bool:
        had_tokens = self.before.rerank(snapshot, query, scored)
        # The map onto the levels was fitted with token vectors; a store without them keeps
        # the plain margin (what the flag tells the retriever), and no checker.
        if had_tokens:
            apply_checker(self.checker, snapshot, query, scored)
        return had_tokens


def apply_checker(checker: AnswerChecker, snapshot: Snapshot, query: Query, scored: Scored) -> None:
    """The checker's verdict on the best candidates of `scored`, in place."""
    with _one_blas_thread():
        found = checker.verdict(snapshot, query, scored)
    if found is None:
        return
    top, logits = found
    odds, p = answered(logits)
    combine(checker.combination, scored.score, scored.confidence, top, odds, p)


_BLAS: Any = None


def _one_blas_thread() -> Any:
    """numpy's BLAS on one thread for the checker's small products, also where the caller
    did not limit it (`Retriever.rank`, the evaluation): on this loaded 2-core machine small
    products took 10-100x longer on two threads than on one."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def combine(
    c: Combination,
    score: np.ndarray,
    confidence: np.ndarray,
    top: np.ndarray,
    odds: np.ndarray,
    p_answered: float,
) -> None:
    """Join the checker's verdict on the candidates at `top` (the best by `score`, best
    first; `odds` their log-odds of being the answer, `p_answered` the probability that one
    of them is) to the scores and confidences of all, in place (training and tuning use the
    same function)."""
    depth = min(c.depth, len(top))
    if depth and c.rank_weight:
        read = top[:depth]
        rest = np.ones(len(score), dtype=bool)
        rest[read] = False
        new = score[read] + np.float32(c.rank_weight) * odds[:depth]
        if rest.any():
            # Those reordered stay above the others, in their new order among themselves.
            floor = float(score[rest].max())
            new += max(0.0, floor - float(new.min()) + 1e-3)
        score[read] = new
    w = c.confidence_weight
    mixed = (confidence.astype(np.float64) + w * p_answered) / (1.0 + w)
    confidence[:] = c.calibrate(mixed)
