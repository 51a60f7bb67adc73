"""`qabot serve`: a resident qabot that answers `qabot ask` over a Unix socket.

A fresh `qabot ask` pays for starting Python, loading the indexes and the model on every
question. While `qabot serve` runs, `qabot ask` sends the question to it instead and prints
what it gets back: the same Retriever over the same store (it reloads the indexes after any
ingest or forget), so the answers are the same as in a fresh process. When nothing listens,
`ask` answers by itself as before.

The socket is `<data dir>/qabot.sock`, readable by its owner only. The protocol is one JSON
line each way: {"question", "k", "mode", "collections", "abstain", "history"} ->
{"answer": {...}} or {"error"} (plus "busy": true when the server has too many connections
open). "abstain" is the asker's QABOT_ABSTAIN line, which wins over the server's. "history"
is the conversation so far, oldest first: earlier questions (strings, asked again in order)
or turns (answers as `qabot ask --json` prints them); the answer then says which turns it
leaned on ("context_used") and how it read the question ("understood").

Trust goes both ways, by user id: `ask` asks only a socket file it owns whose server runs as
its own user (SO_PEERCRED on Linux), and the server answers only that user's processes. In
a shared data folder another user's socket could otherwise answer anything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import selectors
import socket
import stat
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.commands import Command
from bot.errors import BotError
from bot.settings import Settings

log = logging.getLogger(__name__)

SOCKET_NAME = "qabot.sock"
# Generous: a question on a cold million-passage store still answers in well under this.
_READ_TIMEOUT_S = 60.0
# A client's request line must arrive whole within this, and its reply be read within it.
IDLE_TIMEOUT_S = 30.0
MAX_REQUEST = 64 * 1024  # bytes in a request line (a question is at most a few KB)
WORKERS = 4  # questions answered at once (2 cores; one question takes ~10-50 ms)
# Open at once, reading or answering. Past it, the connection longest waiting for its line
# is closed to make room; when all are being answered, a new one is told the server is busy.
MAX_CONNECTIONS = 64
_MAX_DRAIN = 64 * 1024 * 1024  # an over-long line is read and dropped up to this, then cut
_MODES = ("hybrid", "dense", "bm25")


def socket_path(settings: Settings) -> Path:
    return settings.data_dir / SOCKET_NAME


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Keep qabot loaded so `qabot ask` answers at once (until Ctrl-C).

    Loads the model and the indexes once, then answers `qabot ask` from this data folder
    over a Unix socket; asks fall back to answering alone when it is not running.
    """
    from bot.app import App

    if not settings.has_store():
        raise BotError(
            f"no articles stored in {settings.data_dir}; add some with `qabot ingest FILES`"
        )
    app = App(settings)
    retriever = app.retriever
    retriever.keep_resident()  # mapped now, read into memory behind the first questions
    retriever.embedder.encode_query(["warm up"])
    path = socket_path(settings)
    server = make_server(path, retriever)
    print(f"qabot serving {settings.data_dir} on {path}; Ctrl-C stops it", file=sys.stderr)
    sys.stderr.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        path.unlink(missing_ok=True)
        app.close()
    return 0


COMMANDS = [Command("serve", cmd_serve)]


@dataclass
class _Conn:
    """A connection whose request line is still arriving."""

    sock: socket.socket
    deadline: float
    refusal: dict[str, Any] | None = None  # the reply to its request, whatever it asks
    buffer: bytearray = field(default_factory=bytearray)
    too_large: int = 0  # bytes of an over-long line seen so far (read and dropped)


class ResidentServer:
    """Answers one JSON question line per connection on a Unix socket, within bounds.

    One thread (the caller of `serve_forever`) accepts connections and reads their request
    lines without blocking, so a client that connects and says nothing costs a file
    descriptor, never a thread; a complete line goes to a fixed pool of `workers` threads.
    A connection is closed with an error reply when its line has not arrived within
    `idle_timeout` seconds or is longer than `max_request` bytes. Past `max_connections`
    open at once, the one longest waiting for its line is closed to make room (or, when all
    are being answered, the new one gets a "busy" reply). Only processes of the server's
    own user are answered (SO_PEERCRED, where the system has it).
    """

    def __init__(
        self,
        path: Path,
        retriever: Any,
        *,
        idle_timeout: float = IDLE_TIMEOUT_S,
        max_request: int = MAX_REQUEST,
        workers: int = WORKERS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.path = path
        self.retriever = retriever
        self.idle_timeout = idle_timeout
        self.max_request = max_request
        self.max_connections = max_connections
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # the socket is the owner's only
        try:
            self._listener.bind(str(path))
        except BaseException:
            self._listener.close()
            raise
        finally:
            os.umask(old_umask)
        self._listener.listen(128)
        self._listener.setblocking(False)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qabot-serve")
        self._selector = selectors.DefaultSelector()
        self._reading: dict[socket.socket, _Conn] = {}
        self._open = 0  # connections reading or being answered
        self._open_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()

    # -- the accepting and reading thread -----------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until `shutdown` is called (from another thread)."""
        self._stopped.clear()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                soonest = min((c.deadline for c in self._reading.values()), default=now + 3600)
                wait = max(0.0, min(poll_interval, soonest - now))
                for key, _ in self._selector.select(wait):
                    if key.fileobj is self._listener:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        self._wake_r.recv(64)
                    elif conn := self._reading.get(key.fileobj):  # type: ignore[call-overload]
                        self._read(conn)  # (unless closed to make room just now)
                self._expire(time.monotonic())
        finally:
            for conn in list(self._reading.values()):
                self._close(conn)
            self._selector.unregister(self._listener)
            self._selector.unregister(self._wake_r)
            self._stopped.set()

    def _accept(self) -> None:
        for _ in range(64):  # whatever is waiting, then back to the others
            try:
                sock, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            peer = _peer_uid(sock)
            refusal = None
            if peer is not None and peer != os.getuid():
                log.warning("qabot serve refused a connection from uid %d", peer)
                owner = os.getuid()
                refusal = {
                    "error": f"qabot serve answers only its owner (uid {owner}), not uid {peer}"
                }
            if self._open >= self.max_connections and self._reading:
                # Make room: the connection waiting longest for its line goes, so clients
                # that connect and say nothing cannot keep a real question out.
                oldest = min(self._reading.values(), key=lambda c: c.deadline)
                self._refuse(
                    oldest,
                    {"error": "qabot serve closed this connection to make room; ask again"},
                )
            with self._open_lock:
                busy = self._open >= self.max_connections
                if not busy:
                    self._open += 1
            if busy:
                log.info("qabot serve is busy (%d connections); one turned away", self._open)
                _send_and_close(
                    sock,
                    {
                        "error": f"qabot serve is busy ({self.max_connections} connections "
                        "open); try again",
                        "busy": True,
                    },
                )
                continue
            conn = _Conn(sock, time.monotonic() + self.idle_timeout, refusal)
            self._reading[sock] = conn
            self._selector.register(sock, selectors.EVENT_READ)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.debug("a client of qabot serve left before asking (%s)", exc)
            data = b""
        if not data:
            self._close(conn)
            return
        end = data.find(b"\n")
        if conn.too_large:  # drop the rest of an over-long line, then say so
            conn.too_large += len(data) if end < 0 else end
            if end >= 0 or conn.too_large > _MAX_DRAIN:
                self._refuse(conn, self._too_large(conn.too_large, end >= 0))
            return
        if end < 0:
            conn.buffer += data
            if len(conn.buffer) > self.max_request:
                conn.too_large = len(conn.buffer)
                conn.buffer.clear()
            return
        line = bytes(conn.buffer) + data[:end]
        if len(line) > self.max_request:
            self._refuse(conn, self._too_large(len(line), True))
            return
        if conn.refusal is not None:
            self._refuse(conn, conn.refusal)
            return
        self._selector.unregister(conn.sock)
        del self._reading[conn.sock]
        self._pool.submit(self._answer, conn.sock, line)

    def _too_large(self, size: int, whole: bool) -> dict[str, Any]:
        said = f"{size} bytes" if whole else f"over {size} bytes"
        return {"error": f"request too large: {said}, limit {self.max_request}"}

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._reading.values() if c.deadline <= now]:
            log.debug("closed a qabot serve connection idle for %g s", self.idle_timeout)
            self._refuse(
                conn,
                {
                    "error": f"no request within {self.idle_timeout:g} s; qabot serve closed "
                    "the connection"
                },
            )

    def _refuse(self, conn: _Conn, reply: dict[str, Any]) -> None:
        self._selector.unregister(conn.sock)
        del self._reading[conn.sock]
        _send_and_close(conn.sock, reply)
        self._done()

    def _close(self, conn: _Conn) -> None:
        self._selector.unregister(conn.sock)
        del self._reading[conn.sock]
        conn.sock.close()
        self._done()

    def _done(self) -> None:
        with self._open_lock:
            self._open -= 1

    # -- the worker threads -------------------------------------------------------------

    def _answer(self, sock: socket.socket, line: bytes) -> None:
        try:
            reply = self.reply(line)
            sock.setblocking(True)
            sock.settimeout(self.idle_timeout)
            sock.sendall(json.dumps(reply, ensure_ascii=False).encode("utf-8") + b"\n")
        except OSError as exc:  # BrokenPipe, ConnectionReset, a reader too slow
            log.debug("a client of qabot serve left before its answer was sent (%s)", exc)
        finally:
            sock.close()
            self._done()

    def reply(self, line: bytes) -> dict[str, Any]:
        """The reply to one request line: {"answer": ...} or {"error": one line}."""
        from retriever.errors import RetrieverError
        from store.errors import StoreError

        try:
            request = _parse_request(line)
        except _BadRequest as exc:
            return {"error": f"bad request to qabot serve: {exc}"}
        try:
            items = request.pop("history")
            if items:
                ask = {k: request[k] for k in ("k", "mode", "collections", "abstain_below")}
                request["history"] = self.retriever.resume(items, **ask)
            answer = self.retriever.ask(**request)
        except (RetrieverError, StoreError, BotError) as exc:
            return {"error": str(exc)}
        except Exception as exc:  # keep serving; the traceback goes to the log, not the asker
            log.exception("qabot serve failed on the question %r", request["question"][:200])
            return {
                "error": f"qabot serve could not answer ({type(exc).__name__}); "
                "its log has the details"
            }
        return {"answer": answer.model_dump(mode="json")}

    # -- stopping -----------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop `serve_forever` (running in another thread) and wait for it."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._stopped.wait()

    def server_close(self) -> None:
        self._pool.shutdown(wait=True)
        self._listener.close()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()


class _BadRequest(ValueError):
    pass


def _parse_request(line: bytes) -> dict[str, Any]:
    """The keyword arguments of `Retriever.ask` from a request line, checked."""
    try:
        request = json.loads(line)
    except ValueError as exc:
        raise _BadRequest(f"not a JSON object ({exc})") from exc
    if not isinstance(request, dict):
        raise _BadRequest(f"not a JSON object but {type(request).__name__}")
    question = request.get("question")
    if not isinstance(question, str):
        raise _BadRequest(f"question must be text, not {question!r}"[:200])
    k = request.get("k") or 3
    if isinstance(k, bool) or not isinstance(k, int):
        raise _BadRequest(f"k must be a whole number, not {k!r}"[:200])
    mode = request.get("mode") or "hybrid"
    if mode not in _MODES:
        raise _BadRequest(f"mode must be one of {', '.join(_MODES)}, not {mode!r}"[:200])
    collections = request.get("collections")
    if collections is not None and not (
        isinstance(collections, list) and all(isinstance(c, str) for c in collections)
    ):
        raise _BadRequest(f"collections must be a list of names, not {collections!r}"[:200])
    abstain = request.get("abstain")
    if abstain is not None and (isinstance(abstain, bool) or not isinstance(abstain, int | float)):
        raise _BadRequest(f"abstain must be a number, not {abstain!r}"[:200])
    from retriever.conversation import parse_history
    from retriever.errors import BadQuestionError

    try:
        history = parse_history(request.get("history") or [])
    except BadQuestionError as exc:
        raise _BadRequest(str(exc)[:200]) from exc
    return {
        "question": question,
        "k": k,
        "mode": mode,
        "collections": collections,
        "abstain_below": None if abstain is None else float(abstain),
        "history": history,
    }


def _send_and_close(sock: socket.socket, reply: dict[str, Any]) -> None:
    """A short reply without waiting on the client (it fits the socket's buffer), then close."""
    try:
        sock.setblocking(False)
        sock.send(json.dumps(reply).encode("utf-8") + b"\n")
    except OSError as exc:
        log.debug("could not tell a qabot serve client %r (%s)", reply.get("error"), exc)
    finally:
        sock.close()


def _peer_uid(sock: socket.socket) -> int | None:
    """The user id of the process at the other end, where the system says (Linux)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def make_server(path: Path, retriever: Any, **limits: Any) -> ResidentServer:
    """A server on `path` answering with `retriever` (not yet serving); see ResidentServer.

    `limits` are ResidentServer's (idle_timeout, max_request, workers, max_connections).
    A socket file left by a server that died is replaced; one that answers is refused.
    """
    if path.exists():
        if _listening(path):
            raise BotError(f"a qabot server already answers on {path}; stop it first")
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    return ResidentServer(path, retriever, **limits)


def _listening(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def ask_resident(
    path: Path,
    question: str,
    *,
    k: int,
    mode: str,
    collections: list[str] | None,
    abstain: float | None = None,
    history: list[Any] | None = None,
) -> Any | None:
    """The Answer from a running `qabot serve`, or None when none of ours listens on `path`.

    `history`: the conversation so far as the protocol takes it (earlier questions, or
    turns as JSON objects).

    A socket file of another user, or a server process of another user behind it, is not
    asked: in a shared data folder it could say anything. Nor is a busy server. The caller
    then answers by itself. An error the server reports (a bad question, say) is raised as
    a BotError with the server's message, so the user sees what a fresh process would say.
    """
    try:
        info = path.lstat()
    except OSError:
        return None
    if info.st_uid != os.getuid():
        log.warning(
            "not asking %s: it belongs to uid %d, not to you (uid %d); answering here",
            path,
            info.st_uid,
            os.getuid(),
        )
        return None
    if not stat.S_ISSOCK(info.st_mode):
        log.warning("not asking %s: it is not a socket; answering here", path)
        return None
    request = {
        "question": question,
        "k": k,
        "mode": mode,
        "collections": collections,
        "abstain": abstain,
    }
    if history:
        request["history"] = history
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(_READ_TIMEOUT_S)
            s.connect(str(path))
            peer = _peer_uid(s)
            if peer is not None and peer != os.getuid():
                log.warning(
                    "not asking %s: the server behind it runs as uid %d, not as you (uid %d); "
                    "answering here",
                    path,
                    peer,
                    os.getuid(),
                )
                return None
            s.sendall(json.dumps(request).encode("utf-8") + b"\n")
            with s.makefile("rb") as reader:
                line = reader.readline()
    except OSError as exc:
        log.info("no qabot server on %s (%s); answering here", path, exc)
        return None
    if not line:
        return None
    try:
        reply = json.loads(line)
    except ValueError:
        log.warning("qabot serve on %s sent a reply that is not JSON; answering here", path)
        return None
    if reply.get("busy"):
        log.info("qabot serve on %s is busy; answering here", path)
        return None
    if "error" in reply:
        raise BotError(reply["error"])
    from retriever.models import Answer

    return Answer.model_validate(reply["answer"])
