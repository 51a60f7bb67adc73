"""`IndexSource`: where the indexes of a store generation come from (the saved folder,
`saved.LocalIndexes`, or Qdrant, `qdrant.QdrantIndexes`). Apart from `seams.py` because it
returns the built `Indexes`, which are made of those seams."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from store.indexes.build import Indexes
    from store.seams import Store


class IndexSource(Protocol):
    """Where the indexes of a store generation come from, and what `qabot stats` says of
    them."""

    name: str  # "local" or "qdrant", for `qabot stats`

    def open(self, store: Store, folder: Path) -> Indexes:
        """The indexes for the store's generation now (built or brought up to date)."""
        ...

    def rebuild(
        self, store: Store, folder: Path, progress: Callable[[], None] | None = None
    ) -> Indexes:
        """Every index of the store's generation made anew from the store, whatever was
        saved or synced before (`qabot rebuild`); `progress` is called once a unit row."""
        ...

    def describe(self, store: Store, folder: Path) -> dict[str, str]:
        """What the indexes are and whether their engine answers, for `qabot stats`."""
        ...

    def close(self) -> None: ...
