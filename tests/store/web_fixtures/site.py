"""A small local web site for the web and feed tests: real-looking pages, feeds, and the
awkward cases (redirects, a loop, a huge body, a slow answer, a PDF, gzip, a page that
changes). Served by http.server on 127.0.0.1, on a free port, in a thread."""

from __future__ import annotations

import gzip
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).parent

CHANGING_V1 = """<html><head><title>Notice: Brennel ferry timetable</title>
<meta property="og:site_name" content="The Valley Ledger">
<link rel="canonical" href="__BASE__/changing"></head><body>
<nav><a href="/">Home</a> <a href="/news">Local news</a></nav>
<article><h1>Notice: Brennel ferry timetable</h1>
<p>The Brennel ferry will run every thirty minutes from the first of June, starting at
seven in the morning from the slipway below the mill quarter.</p>
<p>The last crossing of the day leaves the station side at half past nine in the evening,
and bicycles travel free of charge on every crossing.</p></article>
<footer>Copyright 2024 The Valley Ledger Media Group.</footer></body></html>"""

CHANGING_V2 = CHANGING_V1.replace("every thirty minutes", "every twenty minutes")


class Site:
    """The running site: `url(path)` gives full URLs; `state` changes what some paths serve;
    `requests` records (path, headers) of every request."""

    def __init__(self) -> None:
        self.state: dict[str, object] = {"changing": CHANGING_V1, "rss_status": 200}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.base = ""

    def url(self, path: str) -> str:
        return self.base + path

    def page(self, name: str) -> bytes:
        return (HERE / name).read_text(encoding="utf-8").replace("__BASE__", self.base).encode()

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if urlsplit(p).path == path)


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

        def send(
            self,
            body: bytes,
            content_type: str = "text/html; charset=utf-8",
            status: int = 200,
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def redirect(self, location: str, status: int = 302) -> None:
            self.send(b"", status=status, headers={"Location": location})

        def do_GET(self) -> None:
            site.requests.append((self.path, dict(self.headers.items())))
            parts = urlsplit(self.path)
            path, query = parts.path, parse_qs(parts.query)
            if path == "/article":
                self.send(site.page("article.html"))
            elif path == "/story2":
                self.send(site.page("story2.html"))
            elif path == "/rss.xml":
                self.feed("rss.xml", "application/rss+xml")
            elif path == "/updates":  # an Atom feed whose URL and type do not say so
                self.send(site.page("atom.xml"), "text/xml")
            elif path == "/mixed-feed":
                self.feed("rss.xml", "application/xml", missing_entry=True)
            elif path == "/changing":
                self.send(str(site.state["changing"]).replace("__BASE__", site.base).encode())
            elif path == "/gzip":
                self.send(
                    gzip.compress(site.page("article.html")), headers={"Content-Encoding": "gzip"}
                )
            elif path == "/redirect":
                self.redirect("/article", 301)
            elif path == "/redirect-to":
                self.redirect(query["url"][0])
            elif path == "/loop-a":
                self.redirect("/loop-b")
            elif path == "/loop-b":
                self.redirect("/loop-a")
            elif path.startswith("/hop/"):
                n = int(path.rsplit("/", 1)[1])
                self.redirect(f"/hop/{n + 1}" if n < 20 else "/article")
            elif path == "/huge":
                self.huge()
            elif path == "/slow":
                time.sleep(2.0)
                self.send(site.page("article.html"))
            elif path == "/report.pdf":
                self.send(b"%PDF-1.4\n%fake but typed as a PDF\n", "application/pdf")
            elif path == "/logo.png":
                self.send(b"\x89PNG\r\n\x1a\n", "image/png")
            elif path == "/empty":
                self.send(b"<html><body><nav><a href='/'>Home</a></nav></body></html>")
            else:
                self.send(b"<html><body>Not found</body></html>", status=404)

        def feed(self, name: str, content_type: str, missing_entry: bool = False) -> None:
            status = int(str(site.state["rss_status"]))
            if status != 200:
                self.send(b"server trouble", "text/plain", status=status)
                return
            etag = '"rss-v1"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = site.page(name)
            if missing_entry:  # one entry links to a page that is not there
                body = body.replace(b"/story2", b"/missing")
            self.send(body, content_type, headers={"ETag": etag})

        def huge(self) -> None:
            # No Content-Length: the client must count while it reads.
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b"<p>" + b"filler words " * 500 + b"</p>\n"
            try:
                for _ in range(400):  # about 2.6 MB
                    self.wfile.write(chunk)
            except OSError:  # the client gave up, as it should
                pass
            self.close_connection = True

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that give up early (huge, slow) are expected here


@contextmanager
def serve(tls: tuple[Path, Path] | None = None) -> Iterator[Site]:
    """Run the site on 127.0.0.1 on a free port until the block ends; over HTTPS when
    `tls` gives a (certificate, key) pair."""
    site = Site()
    server = _QuietServer(("127.0.0.1", 0), _handler(site))
    scheme = "http"
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    site.base = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
