"""Articles from the web: a bounded, SSRF-guarded fetch, page extraction, and RSS/Atom feeds.

`fetch` is the only code here that opens sockets. Unless the caller allows private
addresses (the operator's own CLI may; URLs from Discord may not), every hop resolves the
host, refuses it when any address is private, loopback, link-local, metadata and the like,
and connects to the address it vetted, so a DNS answer that changes between the check and
the connection cannot reach an internal service.
"""

from __future__ import annotations

import calendar
import difflib
import http.client
import io
import ipaddress
import logging
import re
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from store.clean import is_furniture, parse_date, same_words, words
from store.errors import FetchError, SkipSource
from store.models import RawArticle

log = logging.getLogger(__name__)

USER_AGENT = "qabot/0.1"
# The whole download of one URL (connecting, the request, the headers, the body and every
# redirect), wall clock: a server that trickles its answer cannot hold a fetch past it.
DOWNLOAD_SECONDS = 10.0
# How much of a feed one read fetches: at most this many entry pages, within this many
# seconds (wall clock, from the first entry, embedding included). The entries left are not
# stored, so the next sync (or ingest of the feed) picks them up.
MAX_ENTRY_PAGES = 50
ENTRY_SECONDS = 60.0
# A feed entry whose own content has at least this much text carries the whole article;
# shorter content is a teaser and the page behind the entry's link is read instead.
FULL_CONTENT_CHARS = 1500
# Fewer words than this is a menu or a notice, not an article.
MIN_WORDS = 12

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

_METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack instance metadata
    ipaddress.ip_address("fd00:ec2::254"),  # AWS instance metadata over IPv6
}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: not the public internet

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


# -- the address guard ------------------------------------------------------------------


def address_problem(address: str | IPAddress) -> str | None:
    """Why `address` must not be fetched from a public-facing bot, or None when it is a
    public internet address. CGNAT (100.64.0.0/10) and IPv4-mapped IPv6 count as what
    they map to."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT (private) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve the host {host!r} ({exc}); check the URL") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise FetchError(f"the host {host!r} has no address; check the URL")
    return addresses


def _vetted_address(host: str, port: int) -> str:
    """The address to connect to, after checking every address the host resolves to."""
    addresses = _resolve(host, port)
    for address in addresses:
        problem = address_problem(address.split("%", 1)[0])
        if problem:
            raise FetchError(
                f"{host} resolves to {address}, {problem}, which qabot does not fetch from "
                "here; the operator's CLI may, with --allow-private (for a feed: "
                "`qabot feeds add URL --allow-private`)"
            )
    return addresses[0]


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


# -- fetching ---------------------------------------------------------------------------


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
        address = host if allow_private else _vetted_address(host, port)
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


# -- pages ------------------------------------------------------------------------------


def html_to_article(html: str | bytes, url: str | None = None) -> RawArticle:
    """The article in an HTML page: main text only, paragraphs apart by a blank line.

    Title, publisher (site name), author, published date and canonical URL come from the
    page's metadata. `key` and `url` are the canonical URL, else `url`; for a file
    (`url=None`) without a canonical link both are left for the loader to set.
    Raises FetchError when the page holds no article text.
    """
    try:
        import trafilatura
    except ImportError as exc:  # e.g. lxml without its html-clean part
        raise FetchError(
            f"cannot extract articles from HTML ({' '.join(str(exc).split())}); "
            "run `pip install trafilatura lxml_html_clean`"
        ) from exc

    doc = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        include_links=False,
        include_images=False,
    )
    if doc is None:
        raise FetchError("no article text found; the page may need JavaScript or hold no article")
    title = _clean(getattr(doc, "title", None))
    author = _clean(getattr(doc, "author", None))
    publisher = _clean(getattr(doc, "sitename", None))
    blocks = _body_blocks(getattr(doc, "body", None))
    if not blocks:
        blocks = [b for b in (getattr(doc, "text", None) or "").splitlines() if b.strip()]
    text = "\n\n".join(drop_header(blocks, title=title, names=(author, publisher)))
    if len(text.split()) < MIN_WORDS:
        raise FetchError("no article text found; the page may need JavaScript or hold no article")
    canonical = _http_url(getattr(doc, "url", None)) or url
    if url and publisher == urlsplit(url).netloc and not publisher.replace(".", "").isalpha():
        publisher = None  # the extractor's fallback to "host:port" or an IP names no one
    return RawArticle(
        key=canonical or "",
        text=text,
        title=title,
        url=canonical,
        publisher=publisher,
        author=author,
        published=_clean(getattr(doc, "date", None)),
        source=url,
        pre_cleaned=True,
    )


def _body_blocks(body: Any) -> list[str]:
    """Trafilatura's extracted tree as text blocks: one per paragraph, heading or list item."""
    if body is None:
        return []
    blocks: list[str] = []
    for element in body:
        if element.tag == "list":
            items = [element_text(item) for item in element if item.tag == "item"]
            blocks.extend(item for item in items if item)
        else:
            block = element_text(element)
            if block:
                blocks.append(block)
    return blocks


# -- the header above an article's body ---------------------------------------------------

# A byline: "By Mara Okonkwo", "Written by ...", "Posted by ...", "Author: ...".
_BYLINE = re.compile(r"^(?:by|written by|posted by|words by|author:)\s+\S", re.I)
# Words a byline or a dateline carries besides names and the date itself.
_HEADER_WORDS = frozenset(
    "by and staff reporter reporters correspondent correspondents editor writer the in at on "
    "published updated posted last modified am pm gmt utc et pt cet "
    "monday tuesday wednesday thursday friday saturday sunday".split()
)
# A header line is short; a longer block is prose whatever it starts with.
_HEADER_MAX_WORDS = 12
# A standfirst that repeats the headline carries at most this many words more than it.
_STANDFIRST_EXTRA_WORDS = 20


def drop_header(
    blocks: list[str], *, title: str | None, names: tuple[str | None, ...] = ()
) -> list[str]:
    """`blocks` without the header lines a page prints above its article's body.

    Pages put the headline (the title again), a standfirst repeating it, bylines ("By X",
    "X | Publisher"), the publisher's name and a dateline above the first paragraph. They
    are metadata, already read from the page's tags; left in the body they become its
    first sentences and get quoted as answers. Only leading blocks are dropped, up to the
    first that is none of these. `names` are the author and publisher.
    """
    title_words = words(title) if title else []
    name_words = {w for name in names if name for w in words(name)}
    for i, block in enumerate(blocks):
        if not _is_header_line(block, title_words, name_words):
            return blocks[i:]
    return []


def _is_header_line(block: str, title_words: list[str], name_words: set[str]) -> bool:
    tokens = words(block)
    if not tokens:
        return True  # punctuation or a symbol between header lines
    if title_words and _repeats_title(tokens, title_words):
        return True
    if len(tokens) > _HEADER_MAX_WORDS or _TERMINAL_PROSE.search(block):
        return False
    if all(t in name_words or t in _HEADER_WORDS for t in tokens):
        return True  # the author's or the publisher's name, alone or as "X | Publisher"
    if _BYLINE.match(block) or "|" in block:
        return True
    if parse_date(block):  # a dateline: a date, perhaps a weekday and a time
        return all(t.isdigit() or t in _HEADER_WORDS or _is_month(t) for t in tokens)
    return is_furniture(block)


# A block ending like a sentence ("... said.") is prose; "By J. Smith" ends on an initial.
_TERMINAL_PROSE = re.compile(r"\w{3,}[.!?][\"'”’»)\]]*$")


def _repeats_title(tokens: list[str], title_words: list[str]) -> bool:
    """The headline itself (case and punctuation aside, perhaps with the site's name), or
    a standfirst that carries nearly all of it word for word."""
    if tokens == title_words or same_words(tokens, title_words, 0.85):
        return True
    if len(tokens) < 3 or len(title_words) < 3:
        return False
    short, long = sorted((tokens, title_words), key=len)
    ends = (long[: len(short)], long[-len(short) :])
    if len(long) - len(short) <= 4 and short in ends:
        return True  # "Headline | Site" against "Headline", either way round
    if len(tokens) > len(title_words) + _STANDFIRST_EXTRA_WORDS or len(title_words) < 4:
        return False
    match = difflib.SequenceMatcher(None, tokens, title_words, autojunk=False)
    longest = match.find_longest_match(0, len(tokens), 0, len(title_words)).size
    return longest >= 0.8 * len(title_words)


def _is_month(token: str) -> bool:
    return len(token) >= 3 and any(m.startswith(token) for m in _MONTHS)


_MONTHS = (
    "january february march april may june july august september october november december"
).split()


def element_text(element: Any) -> str:
    """The text of an XML/HTML element with its whitespace runs collapsed to single spaces."""
    return " ".join("".join(element.itertext()).split())


def _clean(value: str | None) -> str | None:
    value = " ".join(value.split()) if value else None
    return value or None


def _http_url(value: str | None) -> str | None:
    if value and urlsplit(value).scheme in ("http", "https"):
        return value
    return None


# -- feeds ------------------------------------------------------------------------------


_ROOT = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_SKIP_PROLOG = re.compile(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", re.S | re.I)


def is_feed(body: bytes) -> bool:
    """Whether `body` is an RSS or Atom feed, judged by its XML root element (`rss`,
    `feed`, or RDF for RSS 1.0), whatever the URL or content type says."""
    head = body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16: rare; decode to look
        head = head.decode("utf-16", errors="ignore").encode("utf-8")
    head = _SKIP_PROLOG.sub(b"", head).lstrip()
    match = _ROOT.match(head)
    if not match:
        return False
    name = match.group(1).split(b":")[-1].lower()
    return name in (b"rss", b"feed", b"rdf")


def parse_feed(body: bytes) -> Any:
    """The feed parsed by feedparser; FetchError when it is not a feed feedparser can read."""
    import feedparser

    parsed = feedparser.parse(body)
    if not parsed.get("version") and not parsed.entries:
        problem = parsed.get("bozo_exception")
        raise FetchError(f"not a readable RSS or Atom feed ({problem or 'unknown format'})")
    return parsed


def feed_title(feed: bytes | Any) -> str | None:
    """A feed's own title, when it has one; `feed` is its body or what parse_feed made of it."""
    parsed = parse_feed(feed) if isinstance(feed, bytes) else feed
    return _clean(parsed.feed.get("title"))


def fetch_articles(
    url: str,
    *,
    allow_private: bool,
    known: Callable[[str], bool] | None = None,
    timeout: float = DOWNLOAD_SECONDS,
    max_entry_pages: int = MAX_ENTRY_PAGES,
    entry_seconds: float = ENTRY_SECONDS,
) -> Iterator[RawArticle | SkipSource]:
    """The article at `url`, or the entries of the feed at `url` (judged by content).

    `known(guid_or_link)` says which feed entries are stored already; they are not fetched
    again. A URL or entry that fails is yielded as SkipSource and the rest go on. Each
    download takes at most `timeout` seconds; a feed's entries are read within
    `max_entry_pages` and `entry_seconds` (see EntryBudget), and the entries left are
    reported as one SkipSource for the feed, to be read by the next run.
    """
    try:
        response = fetch(url, allow_private=allow_private, timeout=timeout)
    except UrlError as exc:
        yield SkipSource(url, exc.reason)
        return
    except FetchError as exc:
        yield SkipSource(url, str(exc))
        return
    if is_feed(response.body):
        budget = EntryBudget(pages=max_entry_pages, seconds=entry_seconds, timeout=timeout)
        yield from feed_articles(response, allow_private=allow_private, known=known, budget=budget)
        if budget.left:
            yield SkipSource(
                url, f"{budget.describe_left('run')}; ingest the feed again to read them"
            )
        return
    try:
        article = html_to_article(response.body, url=response.url)
    except FetchError as exc:
        yield SkipSource(url, str(exc))
        return
    yield article.model_copy(update={"source": url})


@dataclass
class EntryBudget:
    """How much of one feed a read may fetch: at most `pages` entry pages, each download
    within `timeout`, and no entry started after `seconds` (wall clock from the first
    entry, the caller's embedding included). After the read, `left` counts the entries not
    read because the budget ran out: they are not stored, so the next read takes them up."""

    pages: int = MAX_ENTRY_PAGES
    seconds: float = ENTRY_SECONDS
    timeout: float = DOWNLOAD_SECONDS
    left: int = 0
    fetched: int = 0

    def describe_left(self, next_what: str) -> str:
        """'N entries left for the next sync' and which limit left them."""
        limit = (
            f"{self.pages} entry pages"
            if self.fetched >= self.pages
            else f"{self.seconds:g} s of reading"
        )
        entries = "entry" if self.left == 1 else "entries"
        return f"{self.left:,} {entries} left for the next {next_what} (at most {limit} a feed)"


def feed_articles(
    response: Response,
    *,
    allow_private: bool,
    known: Callable[[str], bool] | None = None,
    budget: EntryBudget | None = None,
    parsed: Any = None,
) -> Iterator[RawArticle | SkipSource]:
    """The entries of a fetched feed not yet `known`, as articles or SkipSources, within
    `budget` (the default limits when None); `budget.left` then says how many were left.
    `parsed` is the response's body as parse_feed read it, when the caller has it already
    (a big feed takes seconds to parse)."""
    budget = budget if budget is not None else EntryBudget()
    if parsed is None:
        try:
            parsed = parse_feed(response.body)
        except FetchError as exc:
            yield SkipSource(response.url, str(exc))
            return
    publisher = _clean(parsed.feed.get("title"))
    stop = time.monotonic() + budget.seconds
    for entry in parsed.entries:
        link = _http_url(
            urljoin(response.url, entry.get("link") or "") if entry.get("link") else None
        )
        guid = entry.get("id") or link
        refs = [r for r in (guid, link) if r]
        if not refs:
            yield SkipSource(response.url, "a feed entry with neither a link nor an id")
            continue
        if known is not None and any(known(ref) for ref in refs):
            continue
        if time.monotonic() >= stop:
            budget.left += 1
            continue
        try:
            meta, text, full = _entry_parts(entry, publisher)
            if full or not link:
                if not text:
                    raise FetchError("the entry has no text and no link to its page")
                yield RawArticle(
                    key=link or guid or "",
                    text=text,
                    url=link,
                    source=link or guid,
                    guid=guid,
                    pre_cleaned=True,
                    **meta,
                )
                continue
            if budget.fetched >= budget.pages:
                budget.left += 1
                continue
            budget.fetched += 1
            yield _page_article(
                link, guid, meta, allow_private=allow_private, timeout=budget.timeout
            )
        except UrlError as exc:
            yield SkipSource(link or refs[0], exc.reason)
        except FetchError as exc:
            yield SkipSource(link or refs[0], str(exc))
        except Exception as exc:  # one odd entry must not stop the feed
            log.exception("feed entry %s failed", link or guid)
            yield SkipSource(link or refs[0], f"could not read this entry ({exc})")


def _entry_parts(entry: Any, publisher: str | None) -> tuple[dict[str, str | None], str, bool]:
    """A feed entry's metadata, its own text, and whether that text is the whole article
    (else it is a teaser, and the page behind the entry's link is read instead)."""
    title = _clean(entry.get("title"))
    author = _clean(entry.get("author"))
    names = (author, publisher)
    summary = _fragment_text(entry.get("summary") or "", title=title, names=names)
    contents = [c.get("value") or "" for c in entry.get("content") or []]
    content = max(
        (_fragment_text(c, title=title, names=names) for c in contents), key=len, default=""
    )
    full = len(content) >= FULL_CONTENT_CHARS and len(content) >= len(summary)
    meta = {
        "title": title,
        "author": author,
        "publisher": publisher,
        "published": _entry_date(entry),
    }
    return meta, content or summary, full


def _page_article(
    link: str, guid: str | None, meta: dict[str, str | None], *, allow_private: bool, timeout: float
) -> RawArticle:
    """The page behind a feed entry, with the entry's metadata where the page has none."""
    response = fetch(link, allow_private=allow_private, timeout=timeout)
    page = html_to_article(response.body, url=response.url)
    return page.model_copy(
        update={
            "title": page.title or meta["title"],
            "publisher": page.publisher or meta["publisher"],
            "author": page.author or meta["author"],
            "published": page.published or meta["published"],
            "source": link,
            "guid": guid,
        }
    )


def _entry_date(entry: Any) -> str | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if parsed:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC).date().isoformat()
    return _clean(entry.get("published") or entry.get("updated"))


_BLOCK_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "dd", "dt"}


def _fragment_text(
    html: str, *, title: str | None = None, names: tuple[str | None, ...] = ()
) -> str:
    """Text of an HTML fragment from a feed, one block per paragraph, without the header
    lines (headline, byline, dateline) above its first paragraph."""
    if not html.strip():
        return ""
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return " ".join(html.split())
    etree.strip_elements(root, "script", "style", with_tail=False)
    blocks = [
        element_text(el)
        for el in root.iter()
        if isinstance(el.tag, str)
        and el.tag in _BLOCK_TAGS
        and not any(a.tag in _BLOCK_TAGS for a in el.iterancestors())
    ]
    blocks = [b for b in blocks if b] or [element_text(root)]
    return "\n\n".join(drop_header(blocks, title=title, names=names))
