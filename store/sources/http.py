"""The bounded download: one URL within a wall-clock deadline, a size, redirects and the
content types qabot reads, each hop checked by the address guard (store.sources.guard).

`fetch` is the only code in qabot that opens sockets. Unless the caller allows private
addresses, each hop connects to the address the guard vetted, never to a fresh DNS answer.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from store.errors import FetchError
from store.sources.guard import vetted_address

USER_AGENT = "qabot/0.1"
# The whole download of one URL (connecting, the request, the headers, the body and every
# redirect), wall clock: a server that trickles its answer cannot hold a fetch past it.
DOWNLOAD_SECONDS = 10.0

_ACCEPT = (
    "text/html, application/xhtml+xml, application/rss+xml, application/atom+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
)
_READABLE_TYPES = {
    "text/html",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/xml",
    "text/xml",
    "text/plain",
}
_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 64 * 1024


class UrlError(FetchError):
    """A FetchError about one URL, keeping the URL and the reason apart for batch reports."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class Response:
    """What a fetch returned. `url` is the final address after redirects; `status` is 200
    or 304 (not modified, with an empty body)."""

    url: str
    status: int
    content_type: str
    body: bytes
    etag: str | None = None
    last_modified: str | None = None


class _DeadlinePassed(TimeoutError):
    """The whole download took longer than its deadline."""


class _Clock:
    """The wall-clock deadline of one fetch, shared by its hops, and whether any byte of an
    answer has arrived (to tell "no answer" from "too slow")."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.answered = False

    def left(self, per_operation: float) -> float:
        """The time the next socket operation may take; _DeadlinePassed when none is left."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _DeadlinePassed
        return min(per_operation, left)


class _DeadlineReader(io.RawIOBase):
    """A socket's receiving side where each read waits at most the time left to the
    deadline. http.client reads through a buffered file that loops over reads until it has
    a whole line or `amt` bytes, so per-read timeouts alone let a server that sends one
    byte a second hold it for as long as it likes."""

    def __init__(self, sock: socket.socket, clock: _Clock, timeout: float) -> None:
        super().__init__()
        self._sock, self._clock, self._timeout = sock, clock, timeout
        # The socket's own unbuffered file: it keeps the socket open until it is closed,
        # as http.client expects when it closes the connection before reading the body.
        self._raw = sock.makefile("rb", buffering=0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._clock.left(self._timeout))
        n = self._raw.readinto(buffer) or 0
        self._clock.answered = self._clock.answered or n > 0
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineSocket:
    """A connected socket as http.client sees it, with every operation held to the clock."""

    def __init__(self, sock: socket.socket, clock: _Clock, timeout: float) -> None:
        self._sock, self._clock, self._timeout = sock, clock, timeout

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._clock, self._timeout))

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(self._clock.left(self._timeout))
        self._sock.sendall(data)

    def close(self) -> None:
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a vetted address while the Host header still names the host; every
    socket operation, the connection included, is held to the fetch's deadline."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float, clock: _Clock):
        super().__init__(host, port, timeout=timeout)
        self._address = address
        self._clock = clock
        self._per_operation = timeout

    def _open(self) -> socket.socket:
        wait = self._clock.left(self._per_operation)
        return socket.create_connection((self._address, self.port), wait)

    def connect(self) -> None:
        self.sock = _DeadlineSocket(self._open(), self._clock, self._per_operation)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """Connects to a vetted address; SNI and certificate checks still use the host name.
    The TLS handshake is one socket operation, so it too ends by the deadline."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float, clock: _Clock):
        super().__init__(host, port, address=address, timeout=timeout, clock=clock)
        self.default_port = http.client.HTTPS_PORT
        self._context = ssl.create_default_context()

    def connect(self) -> None:
        sock = self._open()
        sock.settimeout(self._clock.left(self._per_operation))
        tls = self._context.wrap_socket(sock, server_hostname=self.host)
        self.sock = _DeadlineSocket(tls, self._clock, self._per_operation)


def fetch(
    url: str,
    *,
    allow_private: bool,
    timeout: float = DOWNLOAD_SECONDS,
    max_bytes: int = 5_000_000,
    max_redirects: int = 5,
    etag: str | None = None,
    last_modified: str | None = None,
) -> Response:
    """GET an http(s) URL, politely and within bounds.

    `timeout` bounds the whole download, wall clock: connecting, sending, the headers, the
    body and every redirect, enforced on each socket operation (a server sending one byte
    a second is cut off at it too). Bodies (after gzip or deflate decoding) larger than
    `max_bytes` are refused; redirects are followed up to `max_redirects`, each hop checked
    like the first. `etag` / `last_modified` make the request conditional: an unchanged
    resource comes back as status 304 with no body.
    Raises UrlError (a FetchError) with a one-line reason.
    """
    clock = _Clock(timeout)
    seen = [url]
    current = url
    for _hop in range(max_redirects + 1):
        try:
            response, location = _get_once(
                current,
                allow_private=allow_private,
                timeout=timeout,
                clock=clock,
                max_bytes=max_bytes,
                etag=etag,
                last_modified=last_modified,
            )
        except TimeoutError as exc:
            if clock.answered or isinstance(exc, _DeadlinePassed) or current != url:
                reason = (
                    f"took longer than {timeout:g} s; the site is too slow, "
                    "try later or save the page and ingest the file"
                )
            else:
                reason = f"no answer within {timeout:g} s; the site is slow or down, try later"
            raise UrlError(url, reason) from exc
        if response is not None:
            return response
        assert location is not None
        current = urljoin(current, location)
        if current in seen:
            raise UrlError(url, "the redirects go round in a loop; the site is misconfigured")
        seen.append(current)
    raise UrlError(
        url, f"more than {max_redirects} redirects; open it in a browser to find its address"
    )


def _get_once(
    url: str,
    *,
    allow_private: bool,
    timeout: float,
    clock: _Clock,
    max_bytes: int,
    etag: str | None,
    last_modified: str | None,
) -> tuple[Response | None, str | None]:
    """One request: a Response, or (None, Location) for a redirect. TimeoutError when
    the clock runs out or a socket operation waits `timeout` for nothing."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UrlError(url, f"{scheme or 'no'} scheme; only http and https URLs are fetched")
    try:
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UrlError(url, f"not a valid URL ({exc})") from exc
    if not host:
        raise UrlError(url, "the URL has no host name")
    try:
        address = host if allow_private else vetted_address(host, port)
    except FetchError as exc:
        raise UrlError(url, str(exc)) from exc

    conn: http.client.HTTPConnection
    if scheme == "https":
        conn = _PinnedHTTPSConnection(host, port, address=address, timeout=timeout, clock=clock)
    else:
        conn = _PinnedHTTPConnection(host, port, address=address, timeout=timeout, clock=clock)
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": _ACCEPT,
        "Accept-Encoding": "gzip, deflate",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        if resp.status in _REDIRECTS:
            location = resp.getheader("Location")
            if not location:
                raise UrlError(url, f"a {resp.status} redirect without a Location header")
            return None, location
        if resp.status == 304:
            return Response(
                url=url,
                status=304,
                content_type="",
                body=b"",
                etag=resp.getheader("ETag") or etag,
                last_modified=resp.getheader("Last-Modified") or last_modified,
            ), None
        if resp.status != 200:
            raise UrlError(url, _status_reason(resp.status, resp.reason))
        content_type = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
        refusal = _content_type_problem(content_type)
        if refusal:
            raise UrlError(url, refusal)
        length = resp.getheader("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise UrlError(url, _too_big(max_bytes))
        raw = _read_bounded(resp, url, max_bytes=max_bytes)
        body = _decode(raw, resp.getheader("Content-Encoding") or "", url, max_bytes)
        return Response(
            url=url,
            status=200,
            content_type=content_type,
            body=body,
            etag=resp.getheader("ETag"),
            last_modified=resp.getheader("Last-Modified"),
        ), None
    except TimeoutError:
        raise  # fetch() says which limit it was
    except ssl.SSLError as exc:
        raise UrlError(
            url, f"TLS failed ({exc.reason or exc}); check the site's certificate"
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise UrlError(
            url, f"the connection failed ({exc or type(exc).__name__}); try later"
        ) from exc
    finally:
        conn.close()


def _status_reason(status: int, reason: str) -> str:
    if status in (401, 403):
        hint = "the site refuses qabot; save the page and ingest the file"
    elif status in (404, 410):
        hint = "check the URL"
    elif status == 429 or status >= 500:
        hint = "try later"
    else:
        hint = "check the URL"
    return f"the server answered {status} {reason}; {hint}"


def _content_type_problem(content_type: str) -> str | None:
    if not content_type or content_type in _READABLE_TYPES or content_type.endswith("+xml"):
        return None
    if content_type == "application/pdf":
        kind = "a PDF"
    elif content_type.startswith("image/"):
        kind = "an image"
    elif content_type.startswith(("audio/", "video/")):
        kind = "audio or video"
    else:
        kind = "not a web page or feed"
    return (
        f"{kind} ({content_type}); qabot reads HTML pages and RSS/Atom feeds, "
        "so save its text as a .txt file and ingest that"
    )


def _too_big(max_bytes: int) -> str:
    return f"larger than {max_bytes:,} bytes; save the article's text and ingest the file"


def _read_bounded(resp: http.client.HTTPResponse, url: str, *, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = resp.read(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise UrlError(url, _too_big(max_bytes))
        chunks.append(chunk)


def _decode(raw: bytes, encoding: str, url: str, max_bytes: int) -> bytes:
    """Undo gzip or deflate, refusing output past `max_bytes` (no decompression bombs)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        candidates = [zlib.MAX_WBITS | 16]
    elif encoding == "deflate":
        candidates = [zlib.MAX_WBITS, -zlib.MAX_WBITS]  # zlib-wrapped, or raw as some send
    else:
        raise UrlError(url, f"unsupported Content-Encoding {encoding!r}")
    for wbits in candidates:
        try:
            inflater = zlib.decompressobj(wbits)
            body = inflater.decompress(raw, max_bytes + 1)
        except zlib.error:
            continue
        if len(body) > max_bytes or inflater.unconsumed_tail:
            raise UrlError(url, _too_big(max_bytes))
        return body
    raise UrlError(url, f"the {encoding} body is damaged; try later")
