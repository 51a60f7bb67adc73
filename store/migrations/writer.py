"""What a backfill is given to work with: the ingest's store and model (`store.ingest.Ingestor`
is one), so that it embeds stored text exactly as an ingest would."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from store.embedding import Embedder
from store.indexes.tokens import Encoded
from store.seams import Store


class Writer(Protocol):
    store: Store
    embedder: Embedder
    batch_size: int

    def title_pieces(self, titles: list[str]) -> list[int]:
        """Word pieces each (cut) title takes before its sentence."""
        ...

    def token_rows(
        self, hashes: list[bytes], encoded: Encoded, title_pieces: list[int]
    ) -> dict[bytes, tuple[np.ndarray, np.ndarray]]:
        """Each sentence's word pieces after its title's, as the store keeps them."""
        ...
