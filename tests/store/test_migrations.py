"""Numbered migrations: an older store opens at the latest layout, its data is filled in a
bounded, resumable part per ingest, and a step that fails leaves the store as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import store.migrations as migrations
from store.db import Store
from store.ingest import Ingestor
from store.migrations import NUMBERS, SchemaStep
from store.models import RawArticle
from tests.doubles import HashingEmbedder

MODEL = dict(model="hashing-64", dim=64)


def _article(n: int) -> RawArticle:
    return RawArticle(
        key=f"a{n}",
        title=f"Article {n}",
        text=f"The council met on day {n} to talk about roads. It voted for repairs {n}.",
    )


def _as_before_numbered_migrations(path: Path, *, feeds_without_allow_private: bool) -> None:
    """Make the file look as a qabot from before this change wrote it."""
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta WHERE key LIKE 'migration:%'")
    db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', '1')")
    if feeds_without_allow_private:
        db.execute("DROP TABLE feeds")
        db.execute(
            "CREATE TABLE feeds (url TEXT NOT NULL, collection TEXT NOT NULL, title TEXT,"
            " etag TEXT, last_modified TEXT, last_synced TEXT, last_error TEXT,"
            " PRIMARY KEY (url, collection))"
        )
        db.execute(
            "INSERT INTO feeds (url, collection) VALUES ('https://x.example/rss', 'default')"
        )
    db.commit()
    db.close()


def test_a_new_store_starts_with_every_migration_recorded(tmp_path: Path) -> None:
    store = Store(tmp_path / "q.sqlite3", **MODEL)
    assert store.migrations_done() == set(NUMBERS)


def test_an_older_store_gets_the_new_column_once_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    Store(path, **MODEL).close()
    _as_before_numbered_migrations(path, feeds_without_allow_private=True)
    store = Store(path, **MODEL)
    rows = store.execute("SELECT url, allow_private FROM feeds").fetchall()
    assert rows == [("https://x.example/rss", 0)]
    # It had no "tokens complete" flag, so the token-vector backfill is still to come.
    assert store.migrations_done() == set(NUMBERS) - {3}
    store.close()
    Store(path, **MODEL).close()  # opening again changes nothing


def test_a_failing_step_leaves_the_store_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "q.sqlite3"
    Store(path, **MODEL).close()
    _as_before_numbered_migrations(path, feeds_without_allow_private=True)

    def half_done(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE feeds ADD COLUMN allow_private INTEGER NOT NULL DEFAULT 0")
        raise RuntimeError("disk pulled out")

    monkeypatch.setattr(migrations, "SCHEMA_STEPS", (SchemaStep(2, "broken", half_done),))
    with pytest.raises(RuntimeError):
        Store(path, **MODEL)
    db = sqlite3.connect(path)
    assert "allow_private" not in {r[1] for r in db.execute("PRAGMA table_info(feeds)")}
    assert db.execute("SELECT COUNT(*) FROM meta WHERE key = 'migration:2'").fetchone() == (0,)
    db.close()
    monkeypatch.undo()
    assert 2 in Store(path, **MODEL).migrations_done()  # the real step, next time


def test_the_backfill_resumes_where_it_stopped_and_skips_what_it_cannot_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import store.ingest as ingest_module

    path = tmp_path / "q.sqlite3"
    store = Store(path, **MODEL)
    ingest = Ingestor(store, HashingEmbedder())
    ingest.ingest([_article(n) for n in range(5)])  # 10 sentences
    kept = store.execute("SELECT hash, ids, vecs FROM token_vectors ORDER BY hash").fetchall()
    with store.transaction() as db:
        db.execute("DELETE FROM token_vectors")
        # An article renamed by hand: its sentences' texts no longer hash to their vectors.
        db.execute("UPDATE articles SET title = 'Renamed' WHERE key = 'a0'")
    store.close()
    _as_before_numbered_migrations(path, feeds_without_allow_private=False)
    store = Store(path, **MODEL)
    ingest = Ingestor(store, HashingEmbedder())
    monkeypatch.setattr(ingest_module, "_UPGRADE_MAX", 4)
    upgraded = []
    while 3 not in store.migrations_done():
        upgraded.append(ingest.ingest([]).upgraded)
        assert len(upgraded) < 10, "the backfill never finishes"
    # 10 sentences read 4 at a time; the 2 that cannot be rebuilt are passed over, not retried.
    assert sum(upgraded) == 8 and max(upgraded) <= 4 and len(upgraded) == 3
    again = store.execute("SELECT hash, ids, vecs FROM token_vectors ORDER BY hash").fetchall()
    assert set(again) <= set(kept) and len(again) == 8  # the rows a fresh ingest wrote
