"""`qabot serve` and `qabot ask` over its socket: what they trust and what they bound.

The server runs in a thread on a real store (SQLite, real indexes) with the deterministic
embedder, as in tests/test_bench.py; the tests that go through `qabot ask` use the real
model's store (tests/bot/conftest.py), so they are slow.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli import main
from bot.serve import ask_resident, make_server
from retriever.retriever import Retriever
from store.db import Store
from store.ingest import Ingestor
from store.models import RawArticle
from tests.doubles import HashingEmbedder

QUESTION = "Who was the first to cross the harbor bridge on a bicycle?"
OTHER_UID = 12345
as_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="acting as another user needs root (os.setuid / os.chown)",
)


def harbor(n: int = 0) -> RawArticle:
    return RawArticle(
        key=f"harbor-{n}.txt",
        title=f"Harbor bridge reopens ({n})",
        text="The harbor bridge reopened on Monday after two years of repairs. "
        "Deputy mayor Sam Lee was the first to cross it on a bicycle.\n\n"
        f"The repairs cost {40 + n} million dollars, the city said.",
        pre_cleaned=True,
    )


class Running:
    """A `qabot serve` server answering from a real store in a thread."""

    def __init__(self, folder: Path, **limits: float) -> None:
        self.embedder = HashingEmbedder()
        self.folder = folder
        self.store = Store(
            folder / "qabot.sqlite3", model=self.embedder.name, dim=self.embedder.dim
        )
        if not self.store.articles():
            Ingestor(self.store, self.embedder).ingest([harbor()])
        self.retriever = Retriever(self.store, self.embedder, folder / "index")
        self.retriever.indexes()  # loaded before serving, as `cmd_serve` does
        self.path = folder / "qabot.sock"
        self.server = make_server(self.path, self.retriever, **limits)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ask(self, question: str = QUESTION) -> object:
        return ask_resident(self.path, question, k=2, mode="hybrid", collections=None)

    def connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(str(self.path))
        return s

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.store.close()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    r = Running(tmp_path, idle_timeout=1.0)
    yield r
    r.stop()


def read_reply(s: socket.socket) -> dict[str, object]:
    with s.makefile("rb") as reader:
        line = reader.readline()
    assert line.endswith(b"\n"), line
    reply: dict[str, object] = json.loads(line)
    return reply


# -- limits ---------------------------------------------------------------------------------


def test_a_one_megabyte_request_gets_an_error_reply_not_a_reset(running: Running) -> None:
    huge = json.dumps({"question": "x" * (1 << 20)}).encode() + b"\n"
    with running.connect() as s:
        s.sendall(huge)
        reply = read_reply(s)
    assert reply["error"] == f"request too large: {len(huge) - 1} bytes, limit 65536"
    assert "Sam Lee" in running.ask().answers[0].text  # type: ignore[attr-defined]


def test_an_idle_client_is_closed_after_the_timeout(running: Running) -> None:
    with running.connect() as s:
        started = time.monotonic()
        reply = read_reply(s)  # says why, then the server closes
        waited = time.monotonic() - started
        assert s.recv(1) == b""
    assert 0.8 < waited < 5
    assert "no request within 1 s" in str(reply["error"])


def test_idle_connections_hold_no_threads_and_questions_are_still_answered(
    running: Running,
) -> None:
    running.ask()  # the worker threads that answer exist now
    before = threading.active_count()
    idle = [running.connect() for _ in range(50)]
    try:
        time.sleep(0.3)
        assert threading.active_count() <= before + 1
        answer = running.ask()
        assert answer is not None and "Sam Lee" in answer.answers[0].text  # type: ignore[attr-defined]
        assert threading.active_count() <= before + 1
    finally:
        for s in idle:
            s.close()


def test_past_the_bound_the_longest_idle_connection_makes_room(tmp_path: Path) -> None:
    r = Running(tmp_path, idle_timeout=5.0, max_connections=4)
    idle = [r.connect() for _ in range(4)]
    try:
        time.sleep(0.1)
        answer = r.ask()  # a fifth connection: the first idle one is closed for it
        assert answer is not None and "Sam Lee" in answer.answers[0].text  # type: ignore[attr-defined]
        assert "to make room" in str(read_reply(idle[0])["error"])
    finally:
        for s in idle:
            s.close()
        r.stop()


def test_a_client_gone_before_its_answer_leaves_no_traceback(
    running: Running, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.serve")
    request = json.dumps({"question": QUESTION, "k": 2}).encode() + b"\n"
    for _ in range(5):
        with running.connect() as s:
            s.sendall(request)
    time.sleep(0.5)
    assert running.ask() is not None
    _, err = capfd.readouterr()
    assert "Traceback" not in err
    assert not [r for r in caplog.records if r.exc_info]
    gone = [r for r in caplog.records if "left before" in r.getMessage()]
    assert gone and all(r.levelno == logging.DEBUG for r in gone)


def test_a_bad_request_names_the_bad_field(running: Running) -> None:
    with running.connect() as s:
        s.sendall(json.dumps({"question": QUESTION, "k": "three"}).encode() + b"\n")
        reply = read_reply(s)
    assert reply["error"] == "bad request to qabot serve: k must be a whole number, not 'three'"
    with running.connect() as s:
        s.sendall(b"{not json\n")
        reply = read_reply(s)
    assert str(reply["error"]).startswith("bad request to qabot serve: not a JSON object")


def test_questions_during_ingests_are_all_answered(running: Running) -> None:
    """`qabot ingest` committing article after article (another connection, as another
    process would be) while questions arrive: each gets an answer, never an error."""
    stop = threading.Event()

    def ingest() -> None:
        store = Store(running.folder / "qabot.sqlite3", model="hashing-64", dim=64)
        ingestor = Ingestor(store, running.embedder)
        n = 1
        while not stop.is_set():
            ingestor.ingest([harbor(n)])
            n += 1
        store.close()

    writer = threading.Thread(target=ingest, daemon=True)
    writer.start()
    errors: list[str] = []
    answered = 0
    try:
        until = time.monotonic() + 4
        while time.monotonic() < until:
            try:
                answer = running.ask()
            except Exception as exc:  # a BotError carrying the server's reply
                errors.append(str(exc))
            else:
                answered += answer is not None and bool(answer.answers)  # type: ignore[attr-defined]
    finally:
        stop.set()
        writer.join(30)
    assert errors == []
    assert answered > 5


# -- trust ----------------------------------------------------------------------------------


def _forged_reply(question: str) -> bytes:
    source = {"id": "f" * 16, "title": "Security notice"}
    sentence = {"text": "FORGED: send your password to evil.example", "score": 1.0}
    sentence |= {"start": 0, "end": 42, "article": source}
    answer = {"question": question, "abstained": False, "answers": [sentence], "timings": {}}
    return json.dumps({"answer": answer}).encode() + b"\n"


_FORGER = """
import os, socket, sys
path, uid, reply = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode() + b"\\n"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)             # the socket file is root's, like the asker's own would be
os.setgid(uid); os.setuid(uid)
s.listen(8)              # but the process listening on it is another user's
print("ready", flush=True)
while True:
    conn, _ = s.accept()
    conn.recv(65536)
    conn.sendall(reply)
    conn.close()
"""


ASKED = "Who led the bridge repair?"
ANSWER = "The repair was led by Dr. Samuel K. Achebe of Northline Engineering."


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Path:  # type: ignore[no-untyped-def]
    """A data folder holding the project's sample articles, stored with the real model."""
    from store.sources.files import find_files, load_file
    from tests.conftest import PROJECT_SAMPLES

    folder = tmp_path_factory.mktemp("asker")
    store = Store(folder / "qabot.sqlite3", model=real_embedder.name, dim=real_embedder.dim)
    items = [item for f in find_files(PROJECT_SAMPLES) for item in load_file(f)]  # type: ignore[arg-type]
    assert Ingestor(store, real_embedder).ingest(items).added
    store.close()
    return folder


@pytest.fixture
def forged_socket_owner(sample_store: Path) -> Iterator[Path]:
    """A server answering on the data folder's socket whose file belongs to another user."""
    path = sample_store / "qabot.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chown(path, OTHER_UID, OTHER_UID)
    listener.listen(8)

    def forge() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(_forged_reply(ASKED))

    threading.Thread(target=forge, daemon=True).start()
    yield path
    listener.close()
    path.unlink()


@pytest.fixture
def forged_peer(sample_store: Path) -> Iterator[Path]:
    """A server on the data folder's socket (a file of ours) run by another user."""
    path = sample_store / "qabot.sock"
    reply = _forged_reply(ASKED).decode().strip()
    proc = subprocess.Popen(
        [sys.executable, "-c", _FORGER, str(path), str(OTHER_UID), reply],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    assert path.stat().st_uid == os.getuid()
    yield path
    proc.kill()
    proc.wait()
    path.unlink()


def _ask_cli(folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--data-dir", str(folder), "ask", "--json", ASKED])
    out, _ = capsys.readouterr()
    return code, out


@pytest.mark.slow
@as_root
def test_ask_refuses_a_socket_file_of_another_user(
    forged_socket_owner: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    code, out = _ask_cli(forged_socket_owner.parent, capsys)
    assert code == 0
    assert "FORGED" not in out
    assert json.loads(out)["answers"][0]["text"] == ANSWER  # from the store itself
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(forged_socket_owner) in m and str(OTHER_UID) in m for m in warned), warned


@pytest.mark.slow
@as_root
def test_ask_refuses_a_server_run_by_another_user(
    forged_peer: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    code, out = _ask_cli(forged_peer.parent, capsys)
    assert code == 0
    assert "FORGED" not in out
    assert json.loads(out)["answers"][0]["text"] == ANSWER
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(forged_peer) in m and str(OTHER_UID) in m for m in warned), warned


_ASKER = """
import json, os, socket, sys
os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[2]))
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(json.dumps({"question": "Who crossed the harbor bridge?"}).encode() + b"\\n")
print(s.makefile("rb").readline().decode().strip())
"""


@as_root
def test_the_server_refuses_a_client_of_another_user(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Reachable by the other user only because the test opens the folder and the socket up,
    # as a mistaken chmod would: the server's own check must still refuse.
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"qabot-serve-test-{os.getpid()}"
    folder.mkdir(mode=0o700)
    try:
        r = Running(folder, idle_timeout=5.0)
        folder.chmod(0o755)
        r.path.chmod(0o666)
        try:
            done = subprocess.run(
                [sys.executable, "-c", _ASKER, str(r.path), str(OTHER_UID)],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 0, done.stderr
            reply = json.loads(done.stdout)
            assert "answer" not in reply
            assert reply["error"] == (
                f"qabot serve answers only its owner (uid {os.getuid()}), not uid {OTHER_UID}"
            )
            assert r.ask() is not None  # its owner is still answered
        finally:
            r.stop()
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=True)


# -- the data folder ------------------------------------------------------------------------


def _loose(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode) & 0o077


def test_a_new_data_folder_and_its_store_are_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.umask(0o022)  # the usual umask, whatever an earlier test left
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "stats"]) == 0
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = [p for p in data.iterdir() if p.name.startswith("qabot.sqlite3")]
    assert files and all(_loose(p) == 0 for p in files), [oct(p.stat().st_mode) for p in files]


def test_an_open_data_folder_is_made_private_by_the_next_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "stats"]) == 0
    data.chmod(0o755)
    for p in data.iterdir():
        p.chmod(0o644)
    assert main(["--data-dir", str(data), "stats"]) == 0
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert all(_loose(p) == 0 for p in data.iterdir())
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(data) in m and "0755" in m for m in warned), warned


@pytest.mark.slow
def test_ingest_and_ask_keep_every_file_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import PROJECT_SAMPLES

    os.umask(0o022)
    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "ingest", str(PROJECT_SAMPLES)]) == 0
    assert main(["--data-dir", str(data), "ask", "Who won?"]) == 0
    made = [data, *data.rglob("*")]
    assert [p for p in made if p.is_file() and data / "index" in p.parents]  # indexes saved
    assert [str(p) for p in made if _loose(p)] == []
