"""Copying a SQLite store into PostgreSQL (`qabot migrate --to postgresql://...`).

Everything the file holds moves: articles, sentences, passages, vectors, token vectors and
their projection, feeds, the answers shown and their votes, the conversations, and the
migrations it has had (a backfill still pending on it goes on in PostgreSQL). Row ids are
kept, so what cites a sentence or an answer by id still finds it. One transaction on the
database: a copy that fails or is stopped leaves it empty, to be run again. The SQLite file
is only read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from store.errors import StoreCorruptError, StoreError
from store.postgres import PostgresStore

# (table, its columns) in the order the copy writes them (references point backwards);
# the column names are the same in both stores ("end" is quoted in PostgreSQL).
TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "articles",
        (
            "id",
            "key",
            "collection",
            "title",
            "url",
            "publisher",
            "published",
            "author",
            "source",
            "guid",
            "text",
            "ingested_at",
        ),
    ),
    ("vectors", ("hash", "vec")),
    ("token_vectors", ("hash", "ids", "vecs")),
    ("token_projection", ("id", "dim", "k", "matrix")),
    ("sentences", ("id", "article_id", "idx", "start", "end", "passage_idx", "text", "vec_hash")),
    ("passages", ("id", "article_id", "idx", "first", "last", "text", "vec_hash")),
    (
        "feeds",
        (
            "url",
            "collection",
            "title",
            "etag",
            "last_modified",
            "last_synced",
            "last_error",
            "allow_private",
        ),
    ),
    ("shown_answers", ("id", "question", "sentences", "article_ids", "guild_id", "created_at")),
    ("answer_votes", ("answer_id", "user_id", "vote", "created_at")),
    (
        "conversation_turns",
        ("conversation", "n", "question", "understood", "abstained", "sentences", "asked_at"),
    ),
)
_IDENTITY = ("sentences", "passages", "shown_answers")  # ids PostgreSQL hands out next
_OWN_META = {"model", "dim", "generation"}  # set by the target as it opens


@dataclass
class CopyReport:
    source: Path
    target: str  # the database's URL, masked
    rows: dict[str, int] = field(default_factory=dict)
    # Rows of each table with a NUL character in a text (see `_without_nul`).
    nul_rows: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        counts = ", ".join(f"{n:,} {table.replace('_', ' ')}" for table, n in self.rows.items())
        said = f"copied {counts} from {self.source} into {self.target}"
        if self.nul_rows:
            where = ", ".join(f"{n:,} {t.replace('_', ' ')}" for t, n in self.nul_rows.items())
            said += (
                f"; {where} held NUL characters, which PostgreSQL text cannot: each was copied "
                "as U+FFFD (�), so quoted sentences still match their articles"
            )
        return said


def _without_nul(row: tuple[object, ...]) -> tuple[object, ...] | None:
    """`row` with each NUL in its texts replaced by U+FFFD, or None if it has none.

    Ingest has removed NUL since it began refusing control characters (store/models.py's
    `safe_text`, where every source enters, before cleaning), but a store written before
    may hold it. One character for one keeps every sentence's offsets into its article."""
    if not any(isinstance(v, str) and "\x00" in v for v in row):
        return None
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in row)


def recorded_model(path: Path) -> tuple[str, int]:
    """The model (name, dimensions) the SQLite store at `path` was built with."""
    if not path.exists():
        raise StoreError(f"no store at {path}; give --data-dir the folder holding qabot.sqlite3")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StoreCorruptError(f"{path} is not a qabot store or is damaged ({exc})") from exc
    if "model" not in meta:
        raise StoreCorruptError(f"{path} records no model: it is not a qabot store")
    return meta["model"], int(meta["dim"])


def copy_to_postgres(
    path: Path, url: str, *, progress: Callable[[str, int], None] | None = None
) -> CopyReport:
    """Copy the SQLite store at `path` into the (empty) PostgreSQL database `url`;
    `progress(table, rows)` is called as rows go in."""
    from store.db import Store as SqliteStore

    model, dim = recorded_model(path)
    source = SqliteStore(path, model=model, dim=dim)  # brings an older file to the layout
    target = PostgresStore(url, model=model, dim=dim)  # refuses a database of another model
    try:
        report = CopyReport(path, target.where)
        with source.snapshot() as snap, target.transaction() as db:
            held = {
                table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchall()[0][0]
                for table in ("articles", "feeds", "shown_answers", "conversation_turns")
            }
            if any(held.values()):
                what = ", ".join(f"{n:,} {t.replace('_', ' ')}" for t, n in held.items() if n)
                raise StoreError(
                    f"the database at {target.where} holds {what} already; copy into an empty "
                    "database (CREATE DATABASE ...), or keep using this one as it is"
                )
            db.execute("TRUNCATE vectors, token_vectors, token_projection")
            for table, columns in TABLES:
                names = ", ".join('"end"' if c == "end" else c for c in columns)
                rows = snap.execute(f"SELECT {', '.join(columns)} FROM {table}")
                n = 0
                with db.cursor() as cur, cur.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        repaired = _without_nul(row)
                        if repaired is not None:
                            row = repaired
                            report.nul_rows[table] = report.nul_rows.get(table, 0) + 1
                        copy.write_row(row)
                        n += 1
                        if progress and n % 10_000 == 0:
                            progress(table, 10_000)
                if progress:
                    progress(table, n % 10_000)
                report.rows[table] = n
            for table in _IDENTITY:
                db.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                )
            # The migrations it has had (and a backfill's progress) go with it.
            meta = [
                (k, v) for k, v in snap.execute("SELECT key, value FROM meta") if k not in _OWN_META
            ]
            db.execute("DELETE FROM meta WHERE key NOT IN ('model', 'dim', 'generation')")
            with db.cursor() as cur:
                cur.executemany("INSERT INTO meta VALUES (%s, %s)", meta)
            # Past the file's: indexes built from the file are rebuilt from the database.
            db.execute(
                "UPDATE meta SET value = %s WHERE key = 'generation'", (str(snap.generation),)
            )
        return report
    finally:
        source.close()
        target.close()
