"""`qabot serve`: a resident qabot that answers `qabot ask` over a Unix socket.

A fresh `qabot ask` pays for starting Python, loading the indexes and the model on every
question. While `qabot serve` runs, `qabot ask` sends the question to it instead and prints
what it gets back: the same Retriever over the same store (it reloads the indexes after any
ingest or forget), so the answers are the same as in a fresh process. When nothing listens,
`ask` answers by itself as before.

The socket is `<data dir>/qabot.sock`, readable by its owner only. The protocol is one JSON
line each way: {"question", "k", "mode", "collections", "abstain"} -> {"answer": {...}} or
{"error"}. "abstain" is the asker's QABOT_ABSTAIN line, which wins over the server's.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import socketserver
import sys
from pathlib import Path
from typing import Any

from bot.errors import BotError
from bot.settings import Settings

log = logging.getLogger(__name__)

SOCKET_NAME = "qabot.sock"
# Generous: a question on a cold million-passage store still answers in well under this.
_READ_TIMEOUT_S = 60.0
_MAX_REQUEST = 64 * 1024


def socket_path(settings: Settings) -> Path:
    return settings.data_dir / SOCKET_NAME


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `serve` command to the `qabot` subparsers."""
    doc = (cmd_serve.__doc__ or "").strip()
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help=doc.splitlines()[0], description=doc
    )
    p.set_defaults(run=cmd_serve)
    return p


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Keep qabot loaded so `qabot ask` answers at once (until Ctrl-C).

    Loads the model and the indexes once, then answers `qabot ask` from this data folder
    over a Unix socket; asks fall back to answering alone when it is not running.
    """
    from bot.app import App

    if not settings.db_path.exists():
        raise BotError(
            f"no articles stored in {settings.data_dir}; add some with `qabot ingest FILES`"
        )
    app = App(settings)
    retriever = app.retriever
    retriever.keep_resident()  # mapped now, read into memory behind the first questions
    retriever.embedder.encode(["warm up"])
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


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    retriever: Any


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        from retriever.errors import RetrieverError
        from store.errors import StoreError

        line = self.rfile.readline(_MAX_REQUEST)
        try:
            request = json.loads(line)
            answer = self.server.retriever.ask(
                str(request["question"]),
                k=int(request.get("k") or 3),
                mode=request.get("mode") or "hybrid",
                collections=request.get("collections"),
                abstain_below=None if request.get("abstain") is None else float(request["abstain"]),
            )
            reply: dict[str, Any] = {"answer": answer.model_dump(mode="json")}
        except (RetrieverError, StoreError, BotError) as exc:
            reply = {"error": str(exc)}
        except (ValueError, KeyError, TypeError) as exc:
            reply = {"error": f"bad request to qabot serve: {exc}"}
        except Exception as exc:  # answer the client, keep serving, keep the traceback
            log.exception("qabot serve failed on a question")
            reply = {"error": f"qabot serve failed: {exc}"}
        self.wfile.write(json.dumps(reply, ensure_ascii=False).encode("utf-8") + b"\n")


def make_server(path: Path, retriever: Any) -> _Server:
    """A threaded Unix-socket server answering with `retriever` (not yet serving).

    A socket file left by a server that died is replaced; one that answers is refused.
    """
    if path.exists():
        if _listening(path):
            raise BotError(f"a qabot server already answers on {path}; stop it first")
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    old_umask = os.umask(0o177)  # the socket is the owner's only
    try:
        server = _Server(str(path), _Handler)
    finally:
        os.umask(old_umask)
    server.retriever = retriever
    return server


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
) -> Any | None:
    """The Answer from a running `qabot serve`, or None when none listens on `path`.

    An error the server reports (a bad question, say) is raised as a BotError with the
    server's message, so the user sees what a fresh process would have said.
    """
    if not path.exists():
        return None
    request = {
        "question": question,
        "k": k,
        "mode": mode,
        "collections": collections,
        "abstain": abstain,
    }
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(_READ_TIMEOUT_S)
            s.connect(str(path))
            s.sendall(json.dumps(request).encode("utf-8") + b"\n")
            with s.makefile("rb") as reader:
                line = reader.readline()
    except OSError as exc:
        log.info("no qabot server on %s (%s); answering here", path, exc)
        return None
    if not line:
        return None
    reply = json.loads(line)
    if "error" in reply:
        raise BotError(reply["error"])
    from retriever.models import Answer

    return Answer.model_validate(reply["answer"])
