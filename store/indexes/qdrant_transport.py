"""How qabot talks to a Qdrant (store/indexes/qdrant.py holds what it says): one small
interface, `Transport`, over the three kinds of points, and its two implementations:
`ClientTransport` (qdrant-client, for a server at http(s)://...; its local mode in tests)
and `EdgeTransport` (qdrant-edge-py: Qdrant's engine in this process, one shard folder per
kind). Every failure becomes a `SearchBackendError` naming the Qdrant by its URL with any
password or key masked.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from store.errors import SearchBackendError

log = logging.getLogger(__name__)

Kind = Literal["sentences", "passages", "articles"]
Using = Literal["dense", "words"]


def mask_url(url: str) -> str:
    """The URL with its password and any key or token in its query replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if parts.password is not None:
        user = parts.username or ""
        host = netloc.rsplit("@", 1)[1]
        netloc = f"{user}:***@{host}"
    elif "@" in netloc:  # a bare user part may itself be a key
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = urlencode(
        [
            (k, "***" if re.search(r"key|token|secret|pass", k, re.I) else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


# -- transports -----------------------------------------------------------------------------


@dataclass
class Point:
    id: int
    dense: list[float]
    words: tuple[list[int], list[float]] | None
    payload: dict[str, Any]


# The HNSW candidate list of a dense search (`hnsw_ef`). Qdrant's default (the graph's
# ef_construct, 100) gave recall@10 0.746 for sentences and 0.849 for passages against exact
# on the benchmark's 20k-passage store (`qabot bench --backend qdrant`); 512 gave 0.92-0.93
# for its 78,800 sentences, 1024 0.96-0.97 (0.99 for passages), in two builds of the graph.
# The misses are the questions that match nothing well (best cosine ~0.30 against ~0.39
# for the rest), not near-ties and not the tenant filter. A larger graph (m 32, or
# ef_construct 256) reaches 0.95 at 512 too, but costs every build 1.35x / 2.5x the time.
DENSE_EF = 1024


def dense_ef(limit: int) -> int:
    """The candidate list for a dense search returning `limit` points."""
    return max(DENSE_EF, 2 * limit)


@dataclass(frozen=True)
class Search:
    """One query: nearest by `using`, at most `limit`, within `tenants` (None: all) and
    `ids` (None: all; given, the scores are exact)."""

    using: Using
    vector: list[float] | tuple[list[int], list[float]]
    limit: int
    tenants: tuple[str, ...] | None = None
    ids: list[int] | None = None
    with_words: bool = False


@dataclass
class Hit:
    id: int
    score: float = 0.0
    payload: dict[str, Any] | None = None
    dense: list[float] | None = None
    words: tuple[list[int], list[float]] | None = None


class Transport(Protocol):
    """What qabot asks of a Qdrant, over three kinds of points (`Kind`)."""

    where: str  # the URL with its credentials masked, for messages

    def ready(self) -> bool:
        """Whether the three collections exist."""
        ...

    def create(self, dim: int) -> None:
        """(Re)create the three collections, empty."""
        ...

    def upsert(self, kind: Kind, points: list[Point]) -> None: ...

    def delete_ids(self, kind: Kind, ids: list[int]) -> None: ...

    def delete_articles(self, kind: Kind, article_ids: list[str]) -> None: ...

    def search(self, kind: Kind, searches: list[Search]) -> list[list[Hit]]: ...

    def retrieve(self, kind: Kind, ids: list[int], vectors: list[Using]) -> list[Hit]: ...

    def scroll(self, kind: Kind) -> Iterator[Hit]:
        """Every point, with its payload."""
        ...

    def count(self, kind: Kind) -> int: ...

    def settle(self) -> None:
        """Build the engine's indexes over what was written (edge: in this process)."""
        ...

    def close(self) -> None: ...


def _failure(where: str, exc: BaseException, secrets: tuple[str, ...] = ()) -> SearchBackendError:
    """A one-line error for a Qdrant call that failed, credentials masked."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    down = re.search(
        r"refused|connect|timed out|timeout|unreachable|resolve|name or service", text, re.I
    )
    what = "is not answering" if down else "failed"
    return SearchBackendError(
        f"Qdrant at {where} {what} ({type(exc).__name__}: {text[:300]}); check "
        "QABOT_QDRANT_URL and QABOT_QDRANT_API_KEY, and that the server is up"
    )


class EdgeTransport:
    """Qdrant's engine in this process (qdrant-edge-py): one shard folder per kind under
    `folder`. A shard folder can be open once per machine; this process shares its one."""

    _open: ClassVar[dict[Path, EdgeTransport]] = {}
    _open_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.where = f"edge://{folder}"
        self._shards: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def at(cls, folder: Path) -> EdgeTransport:
        """The transport on this folder, shared by everything in this process."""
        folder = folder.resolve()
        with cls._open_lock:
            if folder not in cls._open:
                cls._open[folder] = cls(folder)
            return cls._open[folder]

    def _edge(self) -> Any:
        try:
            import qdrant_edge
        except ImportError as exc:
            raise SearchBackendError(
                "QABOT_QDRANT_URL names Qdrant's in-process engine, which is not installed; "
                "pip install qdrant-edge-py"
            ) from exc
        return qdrant_edge

    def _shard(self, kind: Kind) -> Any:
        shard = self._shards.get(kind)
        if shard is None:
            with self._lock:
                shard = self._shards.get(kind)
                if shard is None:
                    path = self.folder / kind
                    if not (path / "edge_config.json").exists():
                        raise SearchBackendError(f"no Qdrant collections at {self.where} yet")
                    shard = self._call(lambda: self._edge().EdgeShard.load(str(path)))
                    self._shards[kind] = shard
        return shard

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except SearchBackendError:
            raise
        except Exception as exc:  # the engine's errors are plain Exceptions
            raise _failure(self.where, exc) from exc

    def ready(self) -> bool:
        return all((self.folder / k / "edge_config.json").exists() for k in _KINDS)

    def create(self, dim: int) -> None:
        q = self._edge()
        with self._lock:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
            for kind in _KINDS:
                path = self.folder / kind
                shutil.rmtree(path, ignore_errors=True)
                path.mkdir(parents=True)
                if kind == "articles":
                    config = q.EdgeConfig(
                        vectors={"dense": q.EdgeVectorParams(size=1, distance=q.Distance.Dot)}
                    )
                else:
                    config = q.EdgeConfig(
                        vectors={"dense": q.EdgeVectorParams(size=dim, distance=q.Distance.Dot)},
                        sparse_vectors={"words": q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)},
                        hnsw_config=q.HnswIndexConfig(
                            m=16, ef_construct=100, full_scan_threshold=10_000, payload_m=16
                        ),
                        # One thread a search, as the local path searches: a pool of one
                        # per core left threads spinning into the next question's encode.
                        max_search_threads=1,
                    )
                shard = self._call(lambda p=path, c=config: q.EdgeShard.create(str(p), c))
                shard.update(
                    q.UpdateOperation.create_field_index(
                        "tenant", q.KeywordIndexParams(is_tenant=True)
                    )
                )
                shard.update(
                    q.UpdateOperation.create_field_index("article", q.PayloadSchemaType.Keyword)
                )
                self._shards[kind] = shard

    def upsert(self, kind: Kind, points: list[Point]) -> None:
        q = self._edge()
        edge_points = []
        for p in points:
            vector: dict[str, Any] = {"dense": p.dense}
            if p.words is not None:
                vector["words"] = q.SparseVector(*p.words)
            edge_points.append(q.Point(p.id, vector, p.payload))
        shard = self._shard(kind)
        self._call(lambda: shard.update(q.UpdateOperation.upsert_points(edge_points)))

    def delete_ids(self, kind: Kind, ids: list[int]) -> None:
        q = self._edge()
        shard = self._shard(kind)
        self._call(lambda: shard.update(q.UpdateOperation.delete_points(ids)))

    def delete_articles(self, kind: Kind, article_ids: list[str]) -> None:
        q = self._edge()
        where = q.Filter(must=[q.FieldCondition("article", match=q.MatchAny(article_ids))])
        shard = self._shard(kind)
        self._call(lambda: shard.update(q.UpdateOperation.delete_points_by_filter(where)))

    def _request(self, s: Search) -> Any:
        q = self._edge()
        must: list[Any] = []
        if s.tenants is not None:
            must.append(q.FieldCondition("tenant", match=q.MatchAny(list(s.tenants))))
        if s.ids is not None:
            must.append(q.HasIdCondition(set(s.ids)))
        vector = q.SparseVector(*s.vector) if isinstance(s.vector, tuple) else s.vector
        return q.QueryRequest(
            limit=s.limit,
            query=q.Query.Nearest(vector, using=s.using),
            filter=q.Filter(must=must) if must else None,
            params=q.SearchParams(exact=True)
            if s.ids is not None
            else q.SearchParams(hnsw_ef=dense_ef(s.limit))
            if s.using == "dense"
            else None,
            with_vector=["words"] if s.with_words else None,
            with_payload=False,
        )

    def search(self, kind: Kind, searches: list[Search]) -> list[list[Hit]]:
        q = self._edge()
        shard = self._shard(kind)
        if len(searches) == 1:
            found = [self._call(lambda: shard.query(self._request(searches[0])))]
        else:
            batch = q.QueryBatchRequest([self._request(s) for s in searches])
            found = self._call(lambda: shard.query_batch(batch))
        return [[_edge_hit(p) for p in points] for points in found]

    def retrieve(self, kind: Kind, ids: list[int], vectors: list[Using]) -> list[Hit]:
        shard = self._shard(kind)
        found = self._call(lambda: shard.retrieve(ids, True, list(vectors) or False))
        return [_edge_hit(r) for r in found]

    def scroll(self, kind: Kind) -> Iterator[Hit]:
        q = self._edge()
        shard = self._shard(kind)
        offset = None
        while True:
            request = q.ScrollRequest(offset=offset, limit=1024, with_payload=True)
            records, offset = self._call(lambda r=request: shard.scroll(r))
            yield from (_edge_hit(r) for r in records)
            if offset is None:
                return

    def count(self, kind: Kind) -> int:
        q = self._edge()
        shard = self._shard(kind)
        return int(self._call(lambda: shard.count(q.CountRequest(exact=True))))

    def settle(self) -> None:
        for kind in _KINDS:
            shard = self._shard(kind)
            self._call(shard.optimize)
            self._call(shard.flush)

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.close()
            self._shards.clear()
        with self._open_lock:
            self._open.pop(self.folder, None)


def _edge_hit(p: Any) -> Hit:
    vector = p.vector or {}
    sparse = vector.get("words") if isinstance(vector, dict) else None
    dense = vector.get("dense") if isinstance(vector, dict) else None
    return Hit(
        id=int(p.id),
        score=float(getattr(p, "score", 0.0)),
        payload=p.payload,
        dense=dense,
        words=None if sparse is None else (list(sparse.indices), list(sparse.values)),
    )


_KINDS: tuple[Kind, Kind, Kind] = ("sentences", "passages", "articles")


class ClientTransport:
    """A Qdrant server through qdrant-client (or the client's local mode, for tests): the
    collections `{prefix}_sentences`, `{prefix}_passages`, `{prefix}_articles`."""

    def __init__(
        self, client: Any, *, prefix: str = "qabot", where: str, secrets: tuple[str, ...] = ()
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.where = where
        self._secrets = secrets

    @classmethod
    def connect(
        cls, url: str, api_key: str | None, prefix: str, *, timeout: float = 10.0
    ) -> ClientTransport:
        try:
            from qdrant_client import QdrantClient
        except ImportError as exc:
            raise SearchBackendError(
                "QABOT_QDRANT_URL names a Qdrant server, but qdrant-client is not installed; "
                "pip install qdrant-client"
            ) from exc
        parts = urlsplit(url)
        secrets = tuple(s for s in (api_key, parts.password) if s)
        where = mask_url(url)
        if api_key and parts.scheme == "http":
            log.warning("sending the Qdrant API key to %s over plain http", where)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Api key is used with an insecure")
                client = QdrantClient(
                    url=url, api_key=api_key, timeout=int(timeout), check_compatibility=False
                )
        except Exception as exc:
            raise _failure(where, exc, secrets) from exc
        return cls(client, prefix=prefix, where=where, secrets=secrets)

    def _name(self, kind: Kind) -> str:
        return f"{self.prefix}_{kind}"

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:
            raise _failure(self.where, exc, self._secrets) from exc

    def ready(self) -> bool:
        return all(
            self._call(lambda k=k: self.client.collection_exists(self._name(k))) for k in _KINDS
        )

    def create(self, dim: int) -> None:
        from qdrant_client import models as m

        for kind in _KINDS:
            name = self._name(kind)
            if self._call(lambda n=name: self.client.collection_exists(n)):
                self._call(lambda n=name: self.client.delete_collection(n))
            size = 1 if kind == "articles" else dim
            sparse = (
                None
                if kind == "articles"
                else {"words": m.SparseVectorParams(modifier=m.Modifier.IDF)}
            )
            self._call(
                lambda n=name, s=size, sp=sparse: self.client.create_collection(
                    n,
                    vectors_config={"dense": m.VectorParams(size=s, distance=m.Distance.DOT)},
                    sparse_vectors_config=sp,
                    hnsw_config=m.HnswConfigDiff(m=16, payload_m=16),
                )
            )
            with _quiet_local_mode():
                self._call(
                    lambda n=name: self.client.create_payload_index(
                        n,
                        "tenant",
                        m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=True),
                    )
                )
                self._call(
                    lambda n=name: self.client.create_payload_index(
                        n, "article", m.PayloadSchemaType.KEYWORD
                    )
                )

    def upsert(self, kind: Kind, points: list[Point]) -> None:
        from qdrant_client import models as m

        structs = []
        for p in points:
            vector: dict[str, Any] = {"dense": p.dense}
            if p.words is not None:
                vector["words"] = m.SparseVector(indices=p.words[0], values=p.words[1])
            structs.append(m.PointStruct(id=p.id, vector=vector, payload=p.payload))
        self._call(lambda: self.client.upsert(self._name(kind), points=structs, wait=True))

    def delete_ids(self, kind: Kind, ids: list[int]) -> None:
        from qdrant_client import models as m

        selector = m.PointIdsList(points=list(ids))
        self._call(
            lambda: self.client.delete(self._name(kind), points_selector=selector, wait=True)
        )

    def delete_articles(self, kind: Kind, article_ids: list[str]) -> None:
        from qdrant_client import models as m

        selector = m.FilterSelector(
            filter=m.Filter(
                must=[m.FieldCondition(key="article", match=m.MatchAny(any=list(article_ids)))]
            )
        )
        self._call(
            lambda: self.client.delete(self._name(kind), points_selector=selector, wait=True)
        )

    def search(self, kind: Kind, searches: list[Search]) -> list[list[Hit]]:
        from qdrant_client import models as m

        requests = []
        for s in searches:
            must: list[Any] = []
            if s.tenants is not None:
                must.append(m.FieldCondition(key="tenant", match=m.MatchAny(any=list(s.tenants))))
            if s.ids is not None:
                must.append(m.HasIdCondition(has_id=list(s.ids)))
            vector = (
                m.SparseVector(indices=s.vector[0], values=s.vector[1])
                if isinstance(s.vector, tuple)
                else s.vector
            )
            requests.append(
                m.QueryRequest(
                    query=vector,
                    using=s.using,
                    limit=s.limit,
                    filter=m.Filter(must=must) if must else None,
                    params=m.SearchParams(exact=True)
                    if s.ids is not None
                    else m.SearchParams(hnsw_ef=dense_ef(s.limit))
                    if s.using == "dense"
                    else None,
                    with_vector=["words"] if s.with_words else False,
                    with_payload=False,
                )
            )
        with _quiet_local_mode():
            found = self._call(
                lambda: self.client.query_batch_points(self._name(kind), requests=requests)
            )
        return [[_client_hit(p) for p in response.points] for response in found]

    def retrieve(self, kind: Kind, ids: list[int], vectors: list[Using]) -> list[Hit]:
        found = self._call(
            lambda: self.client.retrieve(
                self._name(kind),
                ids=list(ids),
                with_payload=True,
                with_vectors=list(vectors) or False,
            )
        )
        return [_client_hit(r) for r in found]

    def scroll(self, kind: Kind) -> Iterator[Hit]:
        offset = None
        while True:
            records, offset = self._call(
                lambda o=offset: self.client.scroll(
                    self._name(kind), limit=1024, offset=o, with_payload=True, with_vectors=False
                )
            )
            yield from (_client_hit(r) for r in records)
            if offset is None:
                return

    def count(self, kind: Kind) -> int:
        return int(self._call(lambda: self.client.count(self._name(kind), exact=True).count))

    def settle(self) -> None:
        pass  # a server optimizes in the background

    def close(self) -> None:
        try:
            self.client.close()
        except Exception as exc:  # closing a client to a server gone away
            log.debug("closing the Qdrant client: %s", exc)


def _client_hit(p: Any) -> Hit:
    vector = p.vector if isinstance(p.vector, dict) else {}
    sparse = vector.get("words")
    dense = vector.get("dense")
    return Hit(
        id=int(p.id),
        score=float(getattr(p, "score", 0.0) or 0.0),
        payload=p.payload,
        dense=dense,
        words=None if sparse is None else (list(sparse.indices), list(sparse.values)),
    )


@contextlib.contextmanager
def _quiet_local_mode() -> Iterator[None]:
    """qdrant-client's local mode warns that payload indexes and search params do nothing
    there; true, and beside the point of its tests."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(local Qdrant|Local mode).*")
        yield


def open_transport(url: str, api_key: str | None, prefix: str, data_dir: Path) -> Transport:
    """The transport `QABOT_QDRANT_URL` names: `edge:` (the data folder's `qdrant-edge`),
    `edge:///absolute/folder`, or a server's `http(s)://host:port`."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "edge":
        rest = url[len("edge:") :]
        path = rest[2:] if rest.startswith("//") else rest
        folder = Path(path) if path else data_dir / "qdrant-edge"
        if not folder.is_absolute():
            raise SearchBackendError(
                f"QABOT_QDRANT_URL {url!r} names a relative folder; write edge:///absolute/path "
                "or just edge: for the data folder"
            )
        return EdgeTransport.at(folder)
    if scheme in ("http", "https"):
        return ClientTransport.connect(url, api_key, prefix)
    raise SearchBackendError(
        f"QABOT_QDRANT_URL {mask_url(url)!r} is not a Qdrant URL; use http(s)://host:6333 for "
        "a server or edge: (edge:///folder) for Qdrant's engine in this process"
    )
