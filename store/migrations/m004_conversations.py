"""4: conversations kept in the store, so that a bot restarted (or another process) follows
them on from where they were (bot/conversation_log.py).

One row a turn, under the key the front end chose ("discord:thread:<id>", "chat:<name>"),
numbered from 0 oldest first; the quoted sentences as JSON (store/rows.py). The SQL is the
same on SQLite and PostgreSQL. Stores open by making every table they lack (store/db.py,
store/postgres.py), so on an older store this step finds the table made and only records
itself; it is here so that the layout's history stays numbered.
"""

from __future__ import annotations

from typing import Any

TABLE = """CREATE TABLE IF NOT EXISTS conversation_turns (
    conversation TEXT NOT NULL,
    n INTEGER NOT NULL,
    question TEXT NOT NULL,
    understood TEXT NOT NULL,
    abstained INTEGER NOT NULL,
    sentences TEXT NOT NULL,
    asked_at TEXT NOT NULL,
    PRIMARY KEY (conversation, n)
)"""


def apply(db: Any) -> None:
    """On a SQLite or psycopg connection, inside the step's transaction."""
    db.execute(TABLE)
