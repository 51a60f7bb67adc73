"""2: each feed keeps its own --allow-private; the feeds of older stores start without it."""

from __future__ import annotations

import sqlite3
from typing import Any


def apply(db: sqlite3.Connection) -> None:
    columns = {row[1] for row in db.execute("PRAGMA table_info(feeds)")}
    # A store made after the column joined the tables, before migrations were numbered,
    # has it already.
    if "allow_private" not in columns:
        db.execute("ALTER TABLE feeds ADD COLUMN allow_private INTEGER NOT NULL DEFAULT 0")


def apply_postgres(db: Any) -> None:
    """The same on PostgreSQL (a psycopg connection), which can say "if not there" itself."""
    db.execute(
        "ALTER TABLE feeds ADD COLUMN IF NOT EXISTS allow_private INTEGER NOT NULL DEFAULT 0"
    )
