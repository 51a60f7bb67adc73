"""Numbered migrations: an older store opens at the latest layout, its data is filled in a
bounded, resumable part per ingest, and a step that fails leaves the store as it was; on
SQLite and on PostgreSQL (the same steps, in its SQL where it differs)."""

from __future__ import annotations

from typing import Any

import pytest

import store.migrations as migrations
from store.ingest import Ingestor
from store.migrations import NUMBERS, SchemaStep
from store.models import RawArticle
from store.seams import Store
from tests.doubles import HashingEmbedder
from tests.engines import OpenStore

MODEL = dict(model="hashing-64", dim=64)


def _article(n: int) -> RawArticle:
    return RawArticle(
        key=f"a{n}",
        title=f"Article {n}",
        text=f"The council met on day {n} to talk about roads. It voted for repairs {n}.",
    )


def _as_before_numbered_migrations(store: Store, *, feeds_without_allow_private: bool) -> None:
    """Make the store look as a qabot from before this change wrote it (the SQL is the
    same on both backends), and close it."""
    with store.transaction() as db:  # type: ignore[attr-defined]
        db.execute("DELETE FROM meta WHERE key LIKE 'migration:%'")
        db.execute("DELETE FROM meta WHERE key = 'schema'")
        db.execute("INSERT INTO meta VALUES ('schema', '1')")
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
    store.close()


def _columns(store: Store, table: str) -> set[str]:
    run: Any = store.execute  # type: ignore[attr-defined]
    if getattr(store, "backend", "sqlite") == "postgresql":
        sql = f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'"
        return {r[0] for r in run(sql).fetchall()}
    return {r[1] for r in run(f"PRAGMA table_info({table})").fetchall()}


def test_a_new_store_starts_with_every_migration_recorded(open_store: OpenStore) -> None:
    store = open_store(**MODEL)
    assert store.migrations_done() == set(NUMBERS)


def test_an_older_store_gets_the_new_column_once_and_keeps_its_rows(
    open_store: OpenStore,
) -> None:
    _as_before_numbered_migrations(open_store(**MODEL), feeds_without_allow_private=True)
    store = open_store(**MODEL)
    rows = store.execute("SELECT url, allow_private FROM feeds").fetchall()  # type: ignore[attr-defined]
    assert [tuple(r) for r in rows] == [("https://x.example/rss", 0)]
    # It had no "tokens complete" flag, so the token-vector backfill is still to come.
    assert store.migrations_done() == set(NUMBERS) - {3}
    store.close()
    open_store(**MODEL).close()  # opening again changes nothing


def test_a_failing_step_leaves_the_store_as_it_was(
    open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as_before_numbered_migrations(open_store(**MODEL), feeds_without_allow_private=True)

    def half_done(db: Any) -> None:
        db.execute("ALTER TABLE feeds ADD COLUMN allow_private INTEGER NOT NULL DEFAULT 0")
        raise RuntimeError("disk pulled out")

    monkeypatch.setattr(migrations, "SCHEMA_STEPS", (SchemaStep(2, "broken", half_done),))
    with pytest.raises(RuntimeError):
        open_store(**MODEL)
    monkeypatch.undo()
    # Looked at through a store opened without the migrations, as the file or database is.
    monkeypatch.setattr(migrations, "SCHEMA_STEPS", ())
    look = open_store(**MODEL)
    assert "allow_private" not in _columns(look, "feeds")
    assert 2 not in look.migrations_done()
    look.close()
    monkeypatch.undo()
    assert 2 in open_store(**MODEL).migrations_done()  # the real step, next time


def test_the_backfill_resumes_where_it_stopped_and_skips_what_it_cannot_rebuild(
    open_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import store.ingest as ingest_module

    store = open_store(**MODEL)
    ingest = Ingestor(store, HashingEmbedder())
    ingest.ingest([_article(n) for n in range(5)])  # 10 sentences
    kept = store.execute("SELECT hash, ids, vecs FROM token_vectors ORDER BY hash").fetchall()  # type: ignore[attr-defined]
    with store.transaction() as db:  # type: ignore[attr-defined]
        db.execute("DELETE FROM token_vectors")
        # An article renamed by hand: its sentences' texts no longer hash to their vectors.
        db.execute("UPDATE articles SET title = 'Renamed' WHERE key = 'a0'")
    _as_before_numbered_migrations(store, feeds_without_allow_private=False)
    store = open_store(**MODEL)
    ingest = Ingestor(store, HashingEmbedder())
    monkeypatch.setattr(ingest_module, "_UPGRADE_MAX", 4)
    upgraded = []
    while 3 not in store.migrations_done():
        upgraded.append(ingest.ingest([]).upgraded)
        assert len(upgraded) < 10, "the backfill never finishes"
    # 10 sentences read 4 at a time; the 2 that cannot be rebuilt are passed over, not retried.
    assert sum(upgraded) == 8 and max(upgraded) <= 4 and len(upgraded) == 3
    again = store.execute("SELECT hash, ids, vecs FROM token_vectors ORDER BY hash").fetchall()  # type: ignore[attr-defined]
    assert {tuple(r) for r in again} <= {tuple(r) for r in kept} and len(again) == 8
