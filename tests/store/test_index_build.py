"""Building and saving the derived indexes while other processes write (issue 18)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from store.db import Store
from store.indexes.build import build_indexes
from store.indexes.saved import open_indexes
from store.ingest import Ingestor
from store.models import RawArticle
from tests.doubles import HashingEmbedder
from tests.engines import OpenStore


def _article(i: int) -> RawArticle:
    text = "\n\n".join(
        " ".join(f"Shipment {i}-{p}-{s} left dock {s} with {i + p + s} crates." for s in range(5))
        for p in range(4)
    )
    return RawArticle(
        key=f"https://example.org/{i}", title=f"Dock log {i}", text=text, pre_cleaned=True
    )


def test_indexes_built_while_an_ingest_commits_are_one_snapshot_of_the_store(
    open_store: OpenStore,
) -> None:
    """`qabot serve` rebuilding its indexes while `qabot ingest` commits article after
    article: every build succeeds and holds the articles of the generation it records (on
    SQLite's WAL, and on PostgreSQL's REPEATABLE READ)."""
    embedder = HashingEmbedder()
    reader = open_store(model=embedder.name, dim=embedder.dim)
    Ingestor(reader, embedder).ingest([_article(i) for i in range(60)])
    first = reader.generation
    # A second connection, as another process's ingest has: one article a transaction.
    writer = open_store(model=embedder.name, dim=embedder.dim)
    stop = threading.Event()

    def ingest_forever() -> None:
        ingest = Ingestor(writer, embedder)
        i = 1000
        while not stop.is_set():
            ingest.ingest([_article(i)])
            i += 1

    thread = threading.Thread(target=ingest_forever)
    thread.start()
    failures: list[Exception] = []
    builds = 0
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline and builds < 30 and len(failures) < 3:
            try:
                indexes = build_indexes(reader)
            except KeyError as exc:  # an article committed between two of the build's reads
                failures.append(exc)
                continue
            builds += 1
            # Each ingest above is one article and one generation.
            assert len(indexes.article_ids) - 60 == indexes.generation - first
            assert len(set(indexes.sentences.article.tolist())) == len(indexes.article_ids)
    finally:
        stop.set()
        thread.join()
    assert writer.generation > first + 5  # the ingest did commit during the builds
    assert failures == []
    assert builds >= 5


_SAVE_FOREVER = """
import sys
from pathlib import Path
from store.db import Store
from tests.doubles import HashingEmbedder
from store.indexes.build import build_indexes
from store.indexes.saved import save_indexes
store = Store(Path(sys.argv[1]), model="hashing-64", dim=64)
indexes = build_indexes(store)
print("saving", flush=True)
while True:
    save_indexes(indexes, Path(sys.argv[2]), "hashing-64")
"""


def _stopped_while_saving(proc: subprocess.Popen[bytes], index_dir: Path) -> list[Path]:
    """Stop `proc` (SIGSTOP) at a moment it has a half-written `.building-*` folder."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(p.is_dir() for p in index_dir.glob(".building-*")):
            proc.send_signal(signal.SIGSTOP)
            building = [p for p in index_dir.glob(".building-*") if p.is_dir()]
            if building:
                return building
            proc.send_signal(signal.SIGCONT)
        time.sleep(0.001)
    raise AssertionError("the saving process never had a .building folder")


def test_a_save_killed_halfway_leaves_no_folder_behind_once_the_next_save_runs(
    tmp_path: Path,
) -> None:
    """An ask killed while it saved rebuilt indexes: its temporary folder (up to a whole
    copy of the indexes) is removed by the next save, but never one a live process is
    still writing."""
    embedder = HashingEmbedder()
    path, index_dir = tmp_path / "qabot.sqlite3", tmp_path / "index"
    store = Store(path, model=embedder.name, dim=embedder.dim)
    Ingestor(store, embedder).ingest([_article(i) for i in range(40)])
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVE_FOREVER, str(path), str(index_dir)],
        env=env,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"saving"
        building = _stopped_while_saving(proc, index_dir)
        # Still alive (only stopped): another process's save leaves its folder alone.
        open_indexes(store, index_dir)
        Ingestor(store, embedder).ingest([_article(41)])  # the next open saves again
        open_indexes(store, index_dir)
        assert all(p.exists() for p in building)
        proc.kill()
        proc.wait()
        assert all(p.exists() for p in building)  # what the kill left behind
        Ingestor(store, embedder).ingest([_article(42)])
        indexes = open_indexes(store, index_dir)
        assert not [p for p in index_dir.glob(".building-*")]
        assert len(indexes.article_ids) == 42
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_old_leftover_without_a_lock_is_removed_and_a_fresh_one_kept(tmp_path: Path) -> None:
    """Folders left by versions that kept no lock beside them: removed once old enough that
    no save can still be writing them."""
    embedder = HashingEmbedder()
    store = Store(tmp_path / "qabot.sqlite3", model=embedder.name, dim=embedder.dim)
    Ingestor(store, embedder).ingest([_article(1)])
    index_dir = tmp_path / "index"
    old, fresh = index_dir / ".building-old1", index_dir / ".building-new1"
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / "sentences.vectors.npy").write_bytes(b"\0" * 4096)
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    open_indexes(store, index_dir)
    assert not old.exists() and fresh.exists()
