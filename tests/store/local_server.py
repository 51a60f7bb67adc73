"""A tiny local web server for tests that need their own pages: a route table of
path -> handler function, served by http.server on 127.0.0.1 in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import urlsplit

Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: ClassVar[dict[str, Route]] = {}
    hits: ClassVar[list[str]] = []
    held: ClassVar[list[tuple[str, float]]] = []

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        self.hits.append(path)
        route = self.routes.get(path)
        if route is None:
            self.send(b"<html><body>Not found</body></html>", status=404)
        else:
            route(self)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def send(
        self, body: bytes, content_type: str = "text/html; charset=utf-8", status: int = 200
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def trickle(self, data: bytes, every: float = 1.0) -> None:
        """Write `data` one byte at a time, `every` seconds apart, until the client leaves;
        `held` then records how long the client stayed (a second or two more, as the
        server notices a closed connection on its next writes)."""
        start = time.monotonic()
        try:
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                self.wfile.flush()
                time.sleep(every)
        except OSError:  # the client gave up, as it should
            pass
        self.held.append((urlsplit(self.path).path, time.monotonic() - start))
        self.close_connection = True


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that give up early are expected here


class Server:
    """The running server: `url(path)`, and `hits` (every path asked, in order)."""

    def __init__(self, base: str, hits: list[str], held: list[tuple[str, float]]) -> None:
        self.base = base
        self.hits = hits
        self.held = held  # (path, seconds) of each trickled answer the client left

    def url(self, path: str) -> str:
        return self.base + path

    def count(self, prefix: str) -> int:
        return sum(1 for p in self.hits if p.startswith(prefix))


@contextmanager
def serve(routes: dict[str, Route]) -> Iterator[Server]:
    """Serve `routes` on a free port of 127.0.0.1 until the block ends."""
    hits: list[str] = []
    held: list[tuple[str, float]] = []
    handler = type("RouteHandler", (Handler,), {"routes": routes, "hits": hits, "held": held})
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{server.server_address[1]}", hits, held)
    finally:
        server.shutdown()
        server.server_close()
