"""Wiring: the real store, embedder and retriever built from the settings, once per process."""

from __future__ import annotations

import logging
from functools import cached_property

from bot.settings import Settings
from retriever.retriever import Retriever
from store.db import Store
from store.embedding import DEFAULT_MODEL, Embedder, SentenceTransformerEmbedder
from store.ingest import Ingestor

log = logging.getLogger(__name__)

# Dimensions of the bundled model, known without loading it, so a store built by another
# model is refused before anyone waits for a model to load.
_KNOWN_DIMS = {DEFAULT_MODEL: 384}


class App:
    """Lazily built pieces of a running qabot: each is made on first use, then kept."""

    def __init__(self, settings: Settings, *, fast_queries: bool = False) -> None:
        self.settings = settings
        # The terminal's `ask` embeds one question: a numpy runtime of the same model starts
        # in a fraction of the time torch takes to import.
        self.fast_queries = fast_queries

    @cached_property
    def embedder(self) -> Embedder:
        if self.fast_queries and self.settings.model == DEFAULT_MODEL:
            try:
                from store.minilm_numpy import NumpyMiniLM

                return NumpyMiniLM()
            except ImportError:  # pragma: no cover - only before that module exists
                pass
        log.info("loading embedding model %s", self.settings.model)
        return SentenceTransformerEmbedder(self.settings.model)

    @cached_property
    def store(self) -> Store:
        dim = _KNOWN_DIMS.get(self.settings.model) or self.embedder.dim
        return Store(self.settings.db_path, model=self.settings.model, dim=dim)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.store, self.embedder, self.settings.index_dir)

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.store, self.embedder)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
