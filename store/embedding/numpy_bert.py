"""all-MiniLM-L6-v2 in plain numpy: the same vectors as sentence-transformers, without torch.

`import sentence_transformers` costs ~10 s, which a one-shot `qabot ask` pays on every call.
This embedder runs the same BERT forward pass (embeddings, six self-attention layers, mean
pooling over the attention mask, L2 normalisation) with numpy float32 matmuls, reading the
weights with `safetensors` and tokenising with `tokenizers`, so loading takes a fraction of a
second. Vectors agree with sentence-transformers to ~1e-6, so a store built with one can be
queried with the other: both record the name "all-MiniLM-L6-v2".

Only BERT encoders with mean pooling are supported; the constructor refuses other configs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from store.embedding import DEFAULT_MODEL, bundled_model_path
from store.indexes.tokens import Encoded

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# GELU(x) = x * Phi(x) = max(x, 0) - |x| * erfc(|x| / sqrt 2) / 2, which needs no branch on
# the sign of x. erfc(z) for z >= 0 is Abramowitz & Stegun 7.1.26: t * poly(t) * exp(-z^2),
# t = 1 / (1 + p z), absolute error < 1.5e-7 (~6e-7 in float32 arithmetic), far below what
# float32 resolves after six layers, and without importing scipy.special (0.2-0.35 s here).
# The 1/sqrt 2 is folded into p and the 1/2 into the coefficients.
_ERF_P = np.float32(0.3275911 / math.sqrt(2.0))
_HALF_ERFC_COEFS = tuple(
    np.float32(c / 2) for c in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
)
# Rows of the (tokens, 1536) intermediate activation the GELU works on at a time, so that its
# temporaries stay in cache instead of streaming tens of megabytes through memory per op.
_GELU_ROWS = 128


def _gelu_inplace(h: np.ndarray) -> None:
    """Exact (erf) GELU, as BERT uses, computed in place on the float32 matrix `h`."""
    for start in range(0, h.shape[0], _GELU_ROWS):
        x = h[start : start + _GELU_ROWS]
        ax = np.abs(x)
        t = ax * _ERF_P
        t += 1.0
        np.reciprocal(t, out=t)
        y = t * _HALF_ERFC_COEFS[0]
        for coef in _HALF_ERFC_COEFS[1:]:
            y += coef
            y *= t
        np.multiply(ax, ax, out=t)
        t *= np.float32(-0.5)
        np.exp(t, out=t)
        y *= t  # erfc(|x| / sqrt 2) / 2
        y *= ax
        np.maximum(x, 0.0, out=x)
        x -= y


def _layer_norm_inplace(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> None:
    """Normalise each row of the float32 matrix `x` in place (BERT's LayerNorm)."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("...i,...i->...", x, x)[..., None]
    var *= np.float32(1.0 / x.shape[-1])
    var += np.float32(eps)
    np.sqrt(var, out=var)
    x /= var
    x *= weight
    x += bias


def _softmax_inplace(scores: np.ndarray, key_bias: np.ndarray) -> None:
    """Masked softmax over the last axis of (B, heads, L, L) scores, in place.

    `key_bias` (B, 1, 1, L) is 0 for real tokens and -1e9 for padding, which so gets no weight.
    """
    scores += key_bias
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)


class BertLayer:
    """One transformer layer's weights, transposed so that activations multiply on the left."""

    def __init__(self, tensors: dict[str, np.ndarray], prefix: str, scale: float) -> None:
        def get(name: str) -> np.ndarray:
            return tensors[f"{prefix}.{name}"].astype(np.float32, copy=False)

        # Query, key and value in one matmul; the 1/sqrt(head_dim) score scale is folded
        # into the query projection.
        self.w_qkv = np.ascontiguousarray(
            np.concatenate(
                [
                    get("attention.self.query.weight").T * np.float32(scale),
                    get("attention.self.key.weight").T,
                    get("attention.self.value.weight").T,
                ],
                axis=1,
            )
        )
        self.b_qkv = np.concatenate(
            [
                get("attention.self.query.bias") * np.float32(scale),
                get("attention.self.key.bias"),
                get("attention.self.value.bias"),
            ]
        )
        self.w_attn_out = np.ascontiguousarray(get("attention.output.dense.weight").T)
        self.b_attn_out = get("attention.output.dense.bias")
        self.ln1_w = get("attention.output.LayerNorm.weight")
        self.ln1_b = get("attention.output.LayerNorm.bias")
        self.w_in = np.ascontiguousarray(get("intermediate.dense.weight").T)
        self.b_in = get("intermediate.dense.bias")
        self.w_out = np.ascontiguousarray(get("output.dense.weight").T)
        self.b_out = get("output.dense.bias")
        self.ln2_w = get("output.LayerNorm.weight")
        self.ln2_b = get("output.LayerNorm.bias")

    def forward(
        self, x: np.ndarray, b: int, length: int, key_bias: np.ndarray, heads: int, eps: float
    ) -> np.ndarray:
        """The layer over a padded batch's token states `x`, (B * L, H) -> (B * L, H);
        `key_bias` (B, 1, 1, L) is 0 for real tokens and -1e9 for padding."""
        dim = x.shape[1]
        head_dim = dim // heads
        qkv = x @ self.w_qkv
        qkv += self.b_qkv
        qkv = qkv.reshape(b, length, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, heads, L, head_dim)
        scores = q @ k.transpose(0, 1, 3, 2)  # (B, heads, L, L), already scaled
        _softmax_inplace(scores, key_bias)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(b * length, dim)

        attn = context @ self.w_attn_out
        attn += self.b_attn_out
        attn += x
        _layer_norm_inplace(attn, self.ln1_w, self.ln1_b, eps)

        hidden = attn @ self.w_in
        hidden += self.b_in
        _gelu_inplace(hidden)
        x = hidden @ self.w_out
        x += self.b_out
        x += attn
        _layer_norm_inplace(x, self.ln2_w, self.ln2_b, eps)
        return x


class NumpyMiniLM:
    """A sentence-transformers BERT model with mean pooling, run in numpy (no torch)."""

    def __init__(self, model_dir: Path | None = None, *, name: str | None = None) -> None:
        from tokenizers import Tokenizer

        bundled = bundled_model_path()
        model_dir = Path(model_dir) if model_dir is not None else bundled
        same_as_bundled = model_dir.resolve() == bundled.resolve()
        self.name = name or (DEFAULT_MODEL if same_as_bundled else str(model_dir))

        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        if config.get("model_type", "bert") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError(f"{model_dir}: only BERT encoders with erf GELU are supported")
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{model_dir}: only absolute position embeddings are supported")
        pooling_file = model_dir / "1_Pooling" / "config.json"
        if pooling_file.exists():
            pooling = json.loads(pooling_file.read_text(encoding="utf-8"))
            modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
            if modes != ["pooling_mode_mean_tokens"]:
                raise ValueError(f"{model_dir}: only mean pooling is supported, not {modes}")
        st_config_file = model_dir / "sentence_bert_config.json"
        st_config: dict[str, Any] = {}
        if st_config_file.exists():
            st_config = json.loads(st_config_file.read_text(encoding="utf-8"))
        if st_config.get("do_lower_case"):
            raise ValueError(f"{model_dir}: do_lower_case in sentence_bert_config is unsupported")

        self.dim = int(config["hidden_size"])
        self._heads = int(config["num_attention_heads"])
        self._eps = float(config.get("layer_norm_eps", 1e-12))
        max_positions = int(config.get("max_position_embeddings", 512))
        self.max_tokens = min(int(st_config.get("max_seq_length", max_positions)), max_positions)

        self._model_dir = model_dir
        self._load_weights(model_dir / "model.safetensors", int(config["num_hidden_layers"]))

        # Inputs are tokenised as sentence-transformers does: the fast tokenizer's own
        # truncation (longest first, from the right, special tokens included), no padding
        # (batches are padded here, to their longest row).
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_tokens)
        self._counting_tokenizer: Tokenizer | None = None  # untruncated, made on first use

    def _load_weights(self, path: Path, layers: int) -> None:
        from safetensors.numpy import load_file

        tensors = load_file(str(path))
        # Some checkpoints prefix every name with the architecture ("bert.").
        if "embeddings.word_embeddings.weight" not in tensors:
            tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}

        def get(name: str) -> np.ndarray:
            return tensors[name].astype(np.float32, copy=False)

        self._word = get("embeddings.word_embeddings.weight")
        # Every input is a single segment: token type 0 is part of every position's embedding.
        self._position = np.ascontiguousarray(
            get("embeddings.position_embeddings.weight")
            + get("embeddings.token_type_embeddings.weight")[0]
        )
        self._emb_ln_w = get("embeddings.LayerNorm.weight")
        self._emb_ln_b = get("embeddings.LayerNorm.bias")
        scale = 1.0 / math.sqrt(self.dim // self._heads)
        self._layers = [BertLayer(tensors, f"encoder.layer.{i}", scale) for i in range(layers)]

    # -- the protocol -------------------------------------------------------------------

    def encode_documents(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed `texts` as L2-normalised float32 rows, shape (len(texts), dim)."""
        return self._run(texts, batch_size, keep_tokens=False).vectors

    def encode_query(self, texts: list[str]) -> Encoded:
        """Questions, as `encode_sentences` (the model has no query prompt)."""
        return self._run(texts, 64, keep_tokens=True)

    def encode_sentences(self, texts: list[str], batch_size: int = 64) -> Encoded:
        """`encode`, and each text's word pieces with their last-layer vectors."""
        return self._run(texts, batch_size, keep_tokens=True)

    def _run(self, texts: list[str], batch_size: int, *, keep_tokens: bool) -> Encoded:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        token_ids: list[np.ndarray] = [np.zeros(0, np.int32)] * len(texts)
        tokens: list[np.ndarray] = [np.zeros((0, self.dim), np.float32)] * len(texts)
        encodings = self._tokenizer.encode_batch(list(texts)) if texts else []
        ids = [e.ids for e in encodings]
        # Longest first, so that each batch pads as little as possible.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        for start in range(0, len(order), max(1, batch_size)):
            rows = order[start : start + max(1, batch_size)]
            width = len(ids[rows[0]])
            batch = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.float32)
            for r, i in enumerate(rows):
                batch[r, : len(ids[i])] = ids[i]
                mask[r, : len(ids[i])] = 1.0
            hidden = self._hidden(batch, mask)
            out[rows] = _mean_pool(hidden, mask)
            if keep_tokens:
                for r, i in enumerate(rows):
                    # [CLS] and [SEP] stand for the whole text, not a word of it.
                    token_ids[i] = np.asarray(ids[i][1:-1], dtype=np.int32)
                    tokens[i] = hidden[r, 1 : len(ids[i]) - 1].copy()
        pieces = [e.tokens[1:-1] if keep_tokens else [] for e in encodings]
        return Encoded(out, token_ids, tokens, pieces)

    def piece_ids(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's word piece ids, [CLS] and [SEP] left out (as `encode_sentences`)."""
        return [
            np.asarray(e.ids[1:-1], dtype=np.int32)
            for e in self._tokenizer.encode_batch(list(texts))
        ]

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces each text takes, [CLS] and [SEP] included, without truncation."""
        if not texts:
            return []
        if self._counting_tokenizer is None:
            from tokenizers import Tokenizer

            counter = Tokenizer.from_file(str(self._model_dir / "tokenizer.json"))
            counter.no_padding()
            counter.no_truncation()
            self._counting_tokenizer = counter
        return [len(e.ids) for e in self._counting_tokenizer.encode_batch(list(texts))]

    # -- the network --------------------------------------------------------------------

    def _hidden(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The last layer's token states of one padded batch, (B, L, H)."""
        b, length = ids.shape
        heads = self._heads
        x = self._word[ids]  # (B, L, H), a fresh array
        x += self._position[:length]
        x = x.reshape(b * length, self.dim)
        _layer_norm_inplace(x, self._emb_ln_w, self._emb_ln_b, self._eps)
        # Padding keys get a large negative score, so they take no attention weight.
        key_bias = ((mask - 1.0) * np.float32(1e9))[:, None, None, :]  # (B, 1, 1, L)

        for layer in self._layers:
            x = layer.forward(x, b, length, key_bias, heads, self._eps)

        return x.reshape(b, length, self.dim)


def _mean_pool(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The mean of each row's real tokens, L2-normalised: (B, L, H) and (B, L) -> (B, H)."""
    summed = (mask[:, None, :] @ tokens)[:, 0]  # (B, H): sum over real tokens
    summed /= np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    summed /= np.maximum(norms, np.float32(1e-12))
    return summed
