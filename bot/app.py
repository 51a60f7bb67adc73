"""Wiring: the real store, embedder and retriever built from the settings, once per process.

The only place that puts a store, an embedder and a retriever together: the commands, the
benchmarks and the Discord bot ask `App` (or `writer_for`) for them instead of wiring.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path

from bot.settings import Settings, make_private
from retriever.rerank import MaxSimReranker, Reranker
from retriever.retriever import Retriever, Weights
from store.db import Store as SqliteStore
from store.embedding import DEFAULT_MODEL, Embedder, load_embedder, model_folder, numpy_runs
from store.indexes.source import IndexSource
from store.ingest import Ingestor
from store.seams import Store

log = logging.getLogger(__name__)

# Dimensions of the bundled model, known without loading it, so a store built by another
# model is refused before anyone waits for a model to load.
_KNOWN_DIMS = {DEFAULT_MODEL: 384}


class App:
    """Lazily built pieces of a running qabot: each is made on first use, then kept.

    Two embedders of the same model: `embedder` (the torch runtime) embeds what is
    ingested; `query_embedder` embeds questions, on the runtime QABOT_QUERY_RUNTIME names.
    For the bundled model "auto" is its numpy runtime (store/embedding/numpy_bert.py): the
    same vectors (within 1e-6), without importing torch (~10 s), and faster on one short
    text: 7.7 ms a question against 13-15 ms for `SentenceTransformer.encode` on this 2-core
    machine.
    """

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        self.settings = settings
        if embedder is not None:  # one loaded already (a benchmark's), used for ingest too
            self.__dict__["embedder"] = embedder

    @classmethod
    def for_data_dir(
        cls, settings: Settings, data_dir: Path, *, embedder: Embedder | None = None
    ) -> App:
        """An App on the store in `data_dir` (the eval's or a benchmark's), with the rest
        of `settings` (model, abstention) as they are."""
        return cls(settings.model_copy(update={"data_dir": data_dir}), embedder=embedder)

    @cached_property
    def embedder(self) -> Embedder:
        log.info("loading embedding model %s", self.settings.model)
        return load_embedder(self.settings.model, runtime="torch")

    @cached_property
    def query_embedder(self) -> Embedder:
        runtime = self.settings.query_runtime
        if runtime == "auto":
            runtime = "numpy" if numpy_runs(model_folder(self.settings.model)) else "torch"
        if runtime == "torch":  # the one that ingests, loaded once
            return self.embedder
        return load_embedder(self.settings.model, runtime=runtime)

    @cached_property
    def store(self) -> Store:
        """The store of truth: the PostgreSQL database QABOT_DATABASE_URL names, else the
        data folder's SQLite file."""
        dim = _KNOWN_DIMS.get(self.settings.model) or self.query_embedder.dim
        make_private(self.settings.data_dir)  # the indexes live there either way
        if self.settings.database_url is not None:
            from store.postgres import PostgresStore

            url = self.settings.database_url.get_secret_value().strip()
            return PostgresStore(url, model=self.settings.model, dim=dim)
        return SqliteStore(self.settings.db_path, model=self.settings.model, dim=dim)

    @cached_property
    def index_source(self) -> IndexSource:
        """Where the search indexes live: the data folder, or the Qdrant QABOT_QDRANT_URL
        names (with QABOT_QDRANT_API_KEY)."""
        return index_source(self.settings)

    @cached_property
    def retriever(self) -> Retriever:
        weights = Weights(abstain_below=self.settings.abstain)
        return Retriever(
            self.store,
            self.query_embedder,
            self.settings.index_dir,
            weights=weights,
            reranker=reranker(weights, checker=self.settings.checker),
            search=self.index_source,
        )

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.store, self.embedder)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
        if "index_source" in self.__dict__:
            self.index_source.close()


def reranker(weights: Weights, *, checker: bool) -> Reranker:
    """The rerank stage: MaxSim, then the answer checker shipped in retriever/data/ when
    `checker` (QABOT_CHECKER) is on."""
    maxsim = MaxSimReranker(weights)
    if not checker:
        return maxsim
    from retriever.checker import AnswerChecker, CheckerReranker

    return CheckerReranker(AnswerChecker(), maxsim)


def index_source(settings: Settings) -> IndexSource:
    """The indexes' home the settings name: local unless QABOT_QDRANT_URL is set."""
    if settings.qdrant_url is None:
        from store.indexes.saved import LocalIndexes

        return LocalIndexes()
    from store.indexes.qdrant import QdrantIndexes, open_transport

    key = settings.qdrant_api_key
    transport = open_transport(
        settings.qdrant_url.get_secret_value().strip(),
        key.get_secret_value().strip() if key else None,
        settings.qdrant_prefix,
        settings.data_dir,
    )
    return QdrantIndexes(transport)


def writer_for(retriever: Retriever) -> tuple[Store, Ingestor]:
    """A second connection to `retriever`'s store and an ingestor on it with the retriever's
    embedder: for a thread that writes while another answers from the first connection
    (SQLite's WAL mode, or PostgreSQL, lets the reader see the last committed state)."""
    read = retriever.store
    store: Store
    if isinstance(read, SqliteStore):
        store = SqliteStore(read.path, model=read.model, dim=read.dim)
    else:
        from store.postgres import PostgresStore

        assert isinstance(read, PostgresStore)
        store = PostgresStore(read.url, model=read.model, dim=read.dim)
    return store, Ingestor(store, retriever.embedder)
