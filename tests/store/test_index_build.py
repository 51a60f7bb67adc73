"""Building and saving the derived indexes while other processes write (issue 18)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from store.db import Store
from store.embedding import HashingEmbedder
from store.index import build_indexes
from store.ingest import Ingestor
from store.models import RawArticle


def _article(i: int) -> RawArticle:
    text = "\n\n".join(
        " ".join(f"Shipment {i}-{p}-{s} left dock {s} with {i + p + s} crates." for s in range(5))
        for p in range(4)
    )
    return RawArticle(
        key=f"https://example.org/{i}", title=f"Dock log {i}", text=text, pre_cleaned=True
    )


def test_indexes_built_while_an_ingest_commits_are_one_snapshot_of_the_store(
    tmp_path: Path,
) -> None:
    """`qabot serve` rebuilding its indexes while `qabot ingest` commits article after
    article: every build succeeds and holds the articles of the generation it records."""
    embedder = HashingEmbedder()
    path = tmp_path / "qabot.sqlite3"
    reader = Store(path, model=embedder.name, dim=embedder.dim)
    Ingestor(reader, embedder).ingest([_article(i) for i in range(60)])
    first = reader.generation
    # A second connection, as another process's ingest has: one article a transaction.
    writer = Store(path, model=embedder.name, dim=embedder.dim)
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
