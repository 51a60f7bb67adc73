"""Errors the store raises. Each message names the bad value and what to do about it."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for everything the store package raises on purpose."""


class SkipSource(StoreError):
    """One input could not be ingested; the rest of the batch goes on.

    `source` is the file, URL or JSON line that was skipped, `reason` a short phrase a user
    can act on ("binary file", "invalid UTF-8 at byte 120; save it as UTF-8").
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class ModelMismatchError(StoreError):
    """The store was built with another embedding model than the one in use."""

    def __init__(self, stored: str, stored_dim: int, wanted: str, wanted_dim: int) -> None:
        super().__init__(
            f"this store was built with the embedding model {stored!r} ({stored_dim} dims), "
            f"not {wanted!r} ({wanted_dim} dims); use that model (QABOT_MODEL) or a new "
            f"--data-dir for the other one"
        )
        self.stored = stored
        self.wanted = wanted


class StoreCorruptError(StoreError):
    """The SQLite file is not a qabot store (or is damaged)."""


class NotFoundError(StoreError):
    """An article (or feed) named by the user is not in the store."""


class FetchError(StoreError):
    """A URL could not be fetched or is not allowed."""


class BackendUnavailableError(StoreError):
    """A server the store or its indexes live on is down or refusing; the message names it
    by its URL with any password or API key masked. Nothing stored is changed by it."""


class SearchBackendError(BackendUnavailableError):
    """The search engine the indexes live in (Qdrant) failed or is not answering; the
    message names it by its URL with any password or API key masked."""


class StoreUnavailableError(BackendUnavailableError):
    """The database server the store lives on (PostgreSQL) refused or dropped the
    connection; the message names it by its URL with the password masked."""
