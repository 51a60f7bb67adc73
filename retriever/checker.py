"""The answer checker: does this sentence answer the question, or is it only about it?

A shallow cross-encoder trained here (`qabot train checker`, retriever/checker_training.py):
the first layers of the bundled all-MiniLM-L6-v2, fine-tuned on the ReQA and SQuAD 2.0 even
split, read the question and a sentence together ("[CLS] question [SEP] sentence [SEP]") and
a linear head on their [CLS] and mean states gives the log-odds that the sentence answers.
It runs here in numpy through the same layer code as the question encoder (no torch). The
shipped file holds the fine-tuned layers and the head; the word-piece embeddings are the
bundled model's, frozen in training and read from its folder at load time.

`CheckerReranker` runs after the MaxSim rerank: it reads the best `depth` candidates, orders
them among themselves by the ranking score plus `rank_weight` x the log-odds (they stay
above the rest), and mixes the checker's probability into the confidence that abstention
reads, mapped back onto the scale of `ABSTAIN_LEVELS` so that QABOT_ABSTAIN keeps its meaning.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retriever.errors import CheckerError
from retriever.query import Query
from retriever.rerank import Reranker
from retriever.scoring import Scored
from retriever.snapshot import Snapshot
from store.embedding import bundled_model_path
from store.embedding.numpy_bert import BertLayer

CHECKER_DIR = Path(__file__).parent / "data"
WEIGHTS_FILE = "checker.safetensors"
CONFIG_FILE = "checker.json"


def checker_shipped(folder: Path = CHECKER_DIR) -> bool:
    """Whether trained checker weights lie in `folder`."""
    return (folder / WEIGHTS_FILE).exists() and (folder / CONFIG_FILE).exists()


@dataclass(frozen=True)
class Combination:
    """How the checker's verdict joins the ranking and the confidence (chosen on the held-out
    even articles by `qabot train checker`, recorded in checker.json)."""

    depth: int  # candidates read, best first by the ranking so far
    rank_weight: float  # ranking score += this x log-odds, among those read
    confidence_weight: float  # confidence = (confidence + this x probability) / (1 + this)
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


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    x /= np.sqrt((x * x).mean(axis=-1, keepdims=True) + np.float32(eps))
    return x * weight + bias


class AnswerChecker:
    """The trained cross-encoder, in numpy: `logits(question, sentences)`."""

    def __init__(self, folder: Path = CHECKER_DIR, model_dir: Path | None = None) -> None:
        """`folder` holds checker.safetensors and checker.json; `model_dir` the base model
        (its word-piece embeddings and tokenizer; default: the bundled all-MiniLM-L6-v2)."""
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        weights, config_path = folder / WEIGHTS_FILE, folder / CONFIG_FILE
        if not weights.exists() or not config_path.exists():
            raise CheckerError(
                f"no answer checker in {folder} (checker.safetensors and checker.json); "
                "train one with `qabot train checker` or set QABOT_CHECKER=off"
            )
        self.config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
        model = self.config["model"]
        self.layers_count = int(model["layers"])
        self.max_tokens = int(model["max_tokens"])
        self._heads = int(model["heads"])
        self._eps = float(model["layer_norm_eps"])
        c = self.config["combination"]
        self.combination = Combination(
            depth=int(c["depth"]),
            rank_weight=float(c["rank_weight"]),
            confidence_weight=float(c["confidence_weight"]),
            knots_from=tuple(float(v) for v in c["knots_from"]),
            knots_to=tuple(float(v) for v in c["knots_to"]),
        )
        model_dir = model_dir or bundled_model_path()
        base = load_file(str(model_dir / "model.safetensors"))
        base = {k.removeprefix("bert."): v for k, v in base.items()}
        self._word = base["embeddings.word_embeddings.weight"].astype(np.float32, copy=False)
        t = {k: v.astype(np.float32) for k, v in load_file(str(weights)).items()}
        self._position = t["embeddings.position_embeddings.weight"]
        self._types = t["embeddings.token_type_embeddings.weight"]
        self._emb_ln = (t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"])
        dim = self._word.shape[1]
        scale = 1.0 / math.sqrt(dim // self._heads)
        self._layers = [BertLayer(t, f"encoder.layer.{i}", scale) for i in range(self.layers_count)]
        self._head_w = t["head.weight"].reshape(-1)  # (2 * dim,): [CLS] then mean
        self._head_b = float(t["head.bias"].reshape(-1)[0])
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_tokens)

    def logits(self, question: str, sentences: list[str]) -> np.ndarray:
        """Log-odds that each sentence answers `question`, (len(sentences),) float32."""
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        enc = self._tokenizer.encode_batch([(question, s) for s in sentences])
        width = max(len(e.ids) for e in enc)
        b = len(enc)
        ids = np.zeros((b, width), dtype=np.int64)
        types = np.zeros((b, width), dtype=np.int64)
        mask = np.zeros((b, width), dtype=np.float32)
        for r, e in enumerate(enc):
            n = len(e.ids)
            ids[r, :n], types[r, :n], mask[r, :n] = e.ids, e.type_ids, 1.0
        x = self._word[ids] + self._position[:width] + self._types[types]
        x = _layer_norm(x.reshape(b * width, -1), *self._emb_ln, self._eps)
        key_bias = ((mask - 1.0) * np.float32(1e9))[:, None, None, :]
        for layer in self._layers:
            x = layer.forward(x, b, width, key_bias, self._heads, self._eps)
        h = x.reshape(b, width, -1)
        mean = (mask[:, None, :] @ h)[:, 0] / mask.sum(axis=1, keepdims=True)
        pooled = np.concatenate([h[:, 0], mean], axis=1)
        return (pooled @ self._head_w + self._head_b).astype(np.float32)


class CheckerReranker:
    """A `Reranker`: the one before it (MaxSim), then the checker on the best `depth`."""

    def __init__(self, checker: AnswerChecker, before: Reranker) -> None:
        self.checker = checker
        self.before = before

    def rerank(self, snapshot: Snapshot, query: Query, scored: Scored) -> bool:
        had_tokens = self.before.rerank(snapshot, query, scored)
        apply_checker(self.checker, snapshot, query.text, scored)
        # The map onto the levels was fitted with token vectors; a store without them keeps
        # the plain margin (what the flag tells the retriever).
        return had_tokens


def apply_checker(
    checker: AnswerChecker, snapshot: Snapshot, question: str, scored: Scored
) -> None:
    """The checker's verdict on the best candidates of `scored`, in place."""
    c = checker.combination
    score, confidence = scored.score, scored.confidence
    depth = min(c.depth, len(score))
    if depth == 0:
        return
    top = np.argsort(-score, kind="stable")[:depth]
    positions = [int(p) for p in scored.candidates.positions[top]]
    rows = snapshot.sentence_rows(positions)
    with _one_blas_thread():
        logits = checker.logits(question, [rows[p].text for p in positions])
    combine(c, score, confidence, top, logits)


_BLAS: Any = None


def _one_blas_thread() -> Any:
    """numpy's BLAS on one thread for the checker's small products, also where the caller
    did not limit it (`Retriever.rank`, the evaluation): on this loaded 2-core machine one
    pair took 140-500 ms on two threads and 3-24 ms on one."""
    global _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def combine(
    c: Combination, score: np.ndarray, confidence: np.ndarray, top: np.ndarray, logits: np.ndarray
) -> None:
    """Join the log-odds of the candidates at `top` (the best by `score`, best first) to the
    scores and confidences of all, in place (training and tuning use the same function)."""
    rest = np.ones(len(score), dtype=bool)
    rest[top] = False
    new = score[top] + np.float32(c.rank_weight) * logits
    if rest.any():
        # Those read stay above those not read, in their new order among themselves.
        floor = float(score[rest].max())
        new += max(0.0, floor - float(new.min()) + 1e-3)
    score[top] = new
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    checked = np.full(len(score), float(p.mean()), dtype=np.float64)
    checked[top] = p
    w = c.confidence_weight
    mixed = (confidence.astype(np.float64) + w * checked) / (1.0 + w)
    confidence[:] = c.calibrate(mixed)
