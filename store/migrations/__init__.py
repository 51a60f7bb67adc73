"""Changes to a store's layout and data, numbered, each applied once per store.

A store records each migration it has had as the meta row `migration:<number>`; a store made
now starts with every one recorded, since its tables are made at the latest layout. Two kinds:

- a schema step (`SchemaStep`) changes tables; it runs when a store opens, in a transaction
  of its own, in number order;
- a backfill (`Backfill`) fills in data older stores lack. It needs the embedding model and
  can take hours on a large store, so an ingest runs a bounded part of each pending one,
  picking up where the last part stopped, until nothing is left; the store answers meanwhile
  with what it has.

To change the layout: add `mNNN_what.py` here with the next number, list it below, and make
`store/db.py`'s tables the new layout (what a new store gets).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from store.migrations import (
    m002_feed_allow_private,
    m003_sentence_token_vectors,
    m004_conversations,
)
from store.migrations.writer import Writer


@dataclass(frozen=True)
class SchemaStep:
    number: int
    name: str
    apply: Callable[[sqlite3.Connection], None]  # inside the step's transaction
    # The same change in PostgreSQL's SQL (store/postgres.py), on a psycopg connection inside
    # the step's transaction; None where the SQLite one is portable.
    apply_postgres: Callable[[Any], None] | None = None


@dataclass(frozen=True)
class Backfill:
    number: int
    name: str
    # Does up to `limit` units of the work with the ingest's model and store, resuming from
    # what the store says is done; (units done, whether nothing is left).
    run: Callable[[Writer, int], tuple[int, bool]]


SCHEMA_STEPS: tuple[SchemaStep, ...] = (
    SchemaStep(
        2,
        "feed_allow_private",
        m002_feed_allow_private.apply,
        m002_feed_allow_private.apply_postgres,
    ),
    SchemaStep(4, "conversations", m004_conversations.apply),
)
BACKFILLS: tuple[Backfill, ...] = (
    Backfill(3, "sentence_token_vectors", m003_sentence_token_vectors.run),
)
NUMBERS = sorted([1] + [s.number for s in SCHEMA_STEPS] + [b.number for b in BACKFILLS])


def key(number: int) -> str:
    return f"migration:{number}"


def migrate(db: sqlite3.Connection, *, new: bool) -> None:
    """Bring a store's tables to the latest layout as it opens (a `new` one has it already)."""
    done = _done(db)
    if new:
        _record(db, NUMBERS)
        return
    if not done:  # a store from before migrations were numbered: what its flags say
        _record(db, [1, *m003_sentence_token_vectors.done_by_flags(db)])
        done = _done(db)
    for step in SCHEMA_STEPS:
        if step.number in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            step.apply(db)
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, 'done')", (key(step.number),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def pending_backfills(done: set[int]) -> list[Backfill]:
    """The backfills a store that has had the migrations `done` still needs, in order."""
    return [b for b in BACKFILLS if b.number not in done]


def done(db: sqlite3.Connection) -> set[int]:
    """The numbers of the migrations a store has had."""
    return _done(db)


def record(db: sqlite3.Connection, number: int) -> None:
    """Record migration `number` as had (a backfill that found nothing left)."""
    _record(db, [number])


def _done(db: sqlite3.Connection) -> set[int]:
    rows = db.execute("SELECT key FROM meta WHERE key LIKE 'migration:%'").fetchall()
    return {int(r[0].split(":", 1)[1]) for r in rows}


def _record(db: sqlite3.Connection, numbers: list[int]) -> None:
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, 'done')", [(key(n),) for n in numbers])


# -- the same migrations on PostgreSQL (store/postgres.py) -----------------------------------
# PostgreSQL stores start at the latest layout; a step still runs on one that lacks it, each
# in a transaction of its own under the store's write lock, so that processes opening one
# database together apply it once.


def migrate_postgres(transaction: Callable[..., AbstractContextManager[Any]]) -> None:
    """Apply the schema steps a PostgreSQL store has not had; `transaction(bump=False)`
    opens one write transaction under the store's lock."""
    with transaction(bump=False) as db:
        if not _done_postgres(db):  # none recorded: it has the first layout, as SQLite's
            flag = db.execute("SELECT value FROM meta WHERE key = 'tokens_complete'").fetchone()
            record_postgres(db, [1, 3] if flag is not None and flag[0] == "1" else [1])
    for step in SCHEMA_STEPS:
        with transaction(bump=False) as db:
            if step.number in _done_postgres(db):  # read under the lock: another may have
                continue
            (step.apply_postgres or step.apply)(db)
            record_postgres(db, [step.number])


def done_postgres(rows: Callable[[str], list[Any]]) -> set[int]:
    """The migrations a PostgreSQL store has had; `rows(sql)` runs a read."""
    return {int(r[0].split(":", 1)[1]) for r in rows(_DONE_SQL)}


def record_postgres(db: Any, numbers: Iterable[int]) -> None:
    """Record migrations as had, on a psycopg connection in a transaction."""
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO meta VALUES (%s, 'done') ON CONFLICT (key) DO NOTHING",
            [(key(n),) for n in numbers],
        )


_DONE_SQL = "SELECT key FROM meta WHERE key LIKE 'migration:%'"  # run without parameters


def _done_postgres(db: Any) -> set[int]:
    return done_postgres(lambda sql: db.execute(sql).fetchall())
