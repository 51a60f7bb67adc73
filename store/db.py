"""The SQLite store: the one source of truth for articles, sentences, passages and vectors.

Vectors are kept once per distinct embedded text (keyed by its hash), so re-ingesting an
article, or a second article carrying the same sentence, embeds nothing new. Every change to
one article is one transaction: an interrupted ingest leaves the store as it was before it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from store import migrations
from store.errors import ModelMismatchError, NotFoundError, StoreCorruptError
from store.models import (
    ArticleInfo,
    Passage,
    PreparedArticle,
    Sentence,
    StoredTurn,
    text_hash,
)
from store.rows import TURN_COLUMNS, article_info, listing_sql, stored_turn, turn_row
from store.seams import FeedRow, IndexArticle, UnitRow, VoteRow

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    collection TEXT NOT NULL,
    title TEXT NOT NULL,
    url TEXT, publisher TEXT, published TEXT, author TEXT, source TEXT, guid TEXT,
    text TEXT NOT NULL,
    ingested_at TEXT NOT NULL,
    UNIQUE (collection, key)
);
CREATE INDEX IF NOT EXISTS articles_guid ON articles (guid);
CREATE INDEX IF NOT EXISTS articles_url ON articles (url);
CREATE TABLE IF NOT EXISTS vectors (hash BLOB PRIMARY KEY, vec BLOB NOT NULL);
-- A sentence's word pieces and their int8 token vectors (store/indexes/tokens.py), by the
-- same hash.
-- Stores made before 2026-12-02 have none: their sentences rank without them.
CREATE TABLE IF NOT EXISTS token_vectors (
    hash BLOB PRIMARY KEY, ids BLOB NOT NULL, vecs BLOB NOT NULL
);
-- The projection every token vector in the store was made with, fitted on its first ones.
CREATE TABLE IF NOT EXISTS token_projection (
    id INTEGER PRIMARY KEY CHECK (id = 0), dim INTEGER NOT NULL, k INTEGER NOT NULL,
    matrix BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS sentences (
    id INTEGER PRIMARY KEY,
    article_id TEXT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    passage_idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    vec_hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS sentences_article ON sentences (article_id, idx);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY,
    article_id TEXT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    first INTEGER NOT NULL,
    last INTEGER NOT NULL,
    text TEXT NOT NULL,
    vec_hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_article ON passages (article_id, idx);
CREATE TABLE IF NOT EXISTS feeds (
    url TEXT NOT NULL,
    collection TEXT NOT NULL,
    title TEXT,
    etag TEXT,
    last_modified TEXT,
    last_synced TEXT,
    last_error TEXT,
    allow_private INTEGER NOT NULL DEFAULT 0,  -- 1: this feed may be on private addresses
    PRIMARY KEY (url, collection)
);
-- Answers shown in Discord and the votes on them (bot/votes.py).
CREATE TABLE IF NOT EXISTS shown_answers (
    id INTEGER PRIMARY KEY,
    question TEXT NOT NULL,
    sentences TEXT NOT NULL,
    article_ids TEXT NOT NULL,
    guild_id TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS answer_votes (
    answer_id INTEGER NOT NULL REFERENCES shown_answers(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    created_at TEXT NOT NULL,
    PRIMARY KEY (answer_id, user_id)
);
-- Conversations, a row a turn (store/migrations/m004_conversations.py).
"""
_SCHEMA += migrations.m004_conversations.TABLE + ";\n"


def _private_files(path: Path) -> None:
    """Make the SQLite file (created now if new) and its -wal / -shm readable by the owner
    only. SQLite creates the -wal and -shm files with the database file's mode."""
    loose = []
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = p.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            try:
                p.chmod(0o600)
            except OSError as exc:  # another user's file: SQLite says what it can't open
                log.warning("%s is readable by other users and stays so: %s", p, exc)
                continue
            loose.append(f"{p.name} ({mode:04o})")
    if loose:
        log.warning("made %s private (0600) in %s", ", ".join(loose), path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


class _Reads:
    """What building the derived indexes reads, on a store or on a snapshot of it."""

    _db: sqlite3.Connection
    model: str
    dim: int

    @property
    def generation(self) -> int:
        """Counts committed changes; derived indexes record the one they were built from."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def token_projection(self) -> np.ndarray | None:
        """The (dim, k) projection of the store's token vectors, None until the first."""
        row = self._db.execute("SELECT dim, k, matrix FROM token_projection").fetchone()
        if row is None:
            return None
        return np.frombuffer(row[2], dtype=np.float32).reshape(row[0], row[1]).copy()

    def iter_units(self, table: str) -> Iterator[UnitRow]:
        """Every sentence or passage: rowid, article id, collection, title, text, index,
        vector, its span (a sentence's start and end offsets in the article's text, a
        passage's first and last sentence), and a sentence's word piece ids and token
        vectors (None for passages and for sentences stored without them)."""
        if table not in ("sentences", "passages"):
            raise ValueError(table)
        if table == "sentences":
            span, tokens = "u.start, u.end", "t.ids, t.vecs"
            join = " LEFT JOIN token_vectors t ON t.hash = u.vec_hash"
        else:
            span, tokens, join = "u.first, u.last", "NULL, NULL", ""
        yield from self._db.execute(
            f"SELECT u.id, u.article_id, a.collection, a.title, u.text, u.idx, v.vec, {span},"
            f" {tokens} FROM {table} u JOIN articles a ON a.id = u.article_id"
            f" JOIN vectors v ON v.hash = u.vec_hash{join} ORDER BY u.article_id, u.idx"
        )

    def unit_count(self, table: str) -> int:
        if table not in ("sentences", "passages"):
            raise ValueError(table)
        return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def index_articles(self) -> list[IndexArticle]:
        return self._db.execute(
            "SELECT id, collection, title, publisher, url, published, source FROM articles"
            " ORDER BY id"
        ).fetchall()

    def passage_spans(self) -> list[tuple[str, int, int, int]]:
        return self._db.execute(
            "SELECT article_id, idx, first, last FROM passages ORDER BY article_id, idx"
        ).fetchall()

    def execute(self, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        """Read-only queries for the layers above (feeds, votes live in the same file)."""
        return self._db.execute(sql, args)


class Snapshot(_Reads):
    """The store as one read transaction sees it (`Store.snapshot`)."""

    def __init__(self, db: sqlite3.Connection, *, model: str, dim: int) -> None:
        self._db = db
        self.model = model
        self.dim = dim


class Store(_Reads):
    """A qabot store in one SQLite file (the `store.seams.Store` seam's first implementation).

    `model` and `dim` name the embedder whose vectors this store holds; a store built by
    another model refuses them (ModelMismatchError) rather than mixing incomparable vectors.
    """

    def __init__(self, path: Path, *, model: str, dim: int) -> None:
        self.path = path
        self._staged = False  # whether `stage` made its temporary tables
        path.parent.mkdir(parents=True, exist_ok=True)
        _private_files(path)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            new = not self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone()
            self._db.executescript(_SCHEMA)  # a new store gets the latest layout
            migrations.migrate(self._db, new=new)
        except sqlite3.DatabaseError as exc:
            raise StoreCorruptError(
                f"{path} is not a qabot store or is damaged ({exc}); "
                "point --data-dir at another folder or move this file away"
            ) from exc
        self._check_model(model, dim)
        self.model = model
        self.dim = dim

    def close(self) -> None:
        self._db.close()

    def _check_model(self, model: str, dim: int) -> None:
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if "model" not in meta:
            with self._tx():
                self._db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [
                        ("model", model),
                        ("dim", str(dim)),
                        ("generation", "0"),
                    ],
                )
        elif meta["model"] != model or int(meta["dim"]) != dim:
            raise ModelMismatchError(meta["model"], int(meta["dim"]), model, dim)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that bumps the generation, so derived indexes see it."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # -- articles -------------------------------------------------------------------------

    def article_state(self, collection: str, key: str) -> str | None:
        """The id of the stored version of the article with this key, if any."""
        row = self._db.execute(
            "SELECT id FROM articles WHERE collection = ? AND key = ?", (collection, key)
        ).fetchone()
        return row[0] if row else None

    def known_vectors(self, hashes: Iterable[bytes]) -> set[bytes]:
        """Which of these text hashes already have a vector."""
        return self._known("vectors", hashes)

    def known_tokens(self, hashes: Iterable[bytes]) -> set[bytes]:
        """Which of these sentence text hashes already have token vectors."""
        return self._known("token_vectors", hashes)

    def _known(self, table: str, hashes: Iterable[bytes]) -> set[bytes]:
        found: set[bytes] = set()
        batch = list(hashes)
        for i in range(0, len(batch), 500):
            chunk = batch[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self._db.execute(
                    f"SELECT hash FROM {table} WHERE hash IN ({marks})", chunk
                )
            )
        return found

    def meta(self, key: str) -> str | None:
        """A value the store keeps about itself (a backfill's progress, say)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        """Keep `value` under `key`; derived indexes do not change with it, so the
        generation does not move."""
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def migrations_done(self) -> set[int]:
        """The numbers of the migrations (store/migrations/) this store has had."""
        return migrations.done(self._db)

    def record_migration(self, number: int) -> None:
        """Record that a backfill found nothing left to do."""
        migrations.record(self._db, number)

    def sentences_without_tokens(
        self, *, after: bytes = b"", limit: int = 2**62
    ) -> list[tuple[bytes, str, str]]:
        """(embedded text's hash, article title, sentence text) of up to `limit` distinct
        sentence texts stored without token vectors (written before they were kept), in
        hash order from after `after`."""
        return [
            (bytes(r[0]), r[1], r[2])
            for r in self._db.execute(
                "SELECT s.vec_hash, MIN(a.title), MIN(s.text) FROM sentences s"
                " JOIN articles a ON a.id = s.article_id WHERE s.vec_hash > ? AND NOT EXISTS"
                " (SELECT 1 FROM token_vectors t WHERE t.hash = s.vec_hash)"
                " GROUP BY s.vec_hash ORDER BY s.vec_hash LIMIT ?",
                (after, limit),
            )
        ]

    def put_tokens(self, tokens: dict[bytes, tuple[np.ndarray, np.ndarray]]) -> None:
        """Add token vectors (word piece ids, int8 vectors) for stored sentence texts."""
        with self._tx() as db:
            self._insert_tokens(db, tokens)

    @staticmethod
    def _insert_tokens(
        db: sqlite3.Connection, tokens: dict[bytes, tuple[np.ndarray, np.ndarray]]
    ) -> None:
        db.executemany(
            "INSERT OR IGNORE INTO token_vectors (hash, ids, vecs) VALUES (?, ?, ?)",
            [
                (h, np.asarray(ids, np.int32).tobytes(), np.asarray(v, np.int8).tobytes())
                for h, (ids, v) in tokens.items()
            ],
        )

    def set_token_projection(self, matrix: np.ndarray) -> np.ndarray:
        """Record the projection unless the store has one already; the one in force."""
        m = np.ascontiguousarray(matrix, dtype=np.float32)
        self._db.execute(
            "INSERT OR IGNORE INTO token_projection (id, dim, k, matrix) VALUES (0, ?, ?, ?)",
            (m.shape[0], m.shape[1], m.tobytes()),
        )
        current = self.token_projection()
        assert current is not None
        return current

    def stage(
        self,
        vectors: dict[bytes, np.ndarray],
        tokens: dict[bytes, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        """Hold vectors (and sentences' token vectors) for articles not written yet, in this
        connection's temporary tables: on disk, outside the store and its transactions,
        gone with the connection. An ingest embeds a large article a batch at a time into
        them, so its vectors never all sit in memory, and `put_article` takes what it needs
        from them inside the article's one transaction."""
        db = self._db
        if not self._staged:
            # On disk, never in memory (setting it later would drop the temporary tables).
            db.execute("PRAGMA temp_store = FILE")
            db.execute("CREATE TEMP TABLE staged_vectors (hash BLOB PRIMARY KEY, vec BLOB)")
            db.execute(
                "CREATE TEMP TABLE staged_tokens (hash BLOB PRIMARY KEY, ids BLOB, vecs BLOB)"
            )
            self._staged = True
        db.executemany(
            "INSERT OR REPLACE INTO temp.staged_vectors VALUES (?, ?)",
            ((h, np.asarray(v, dtype=np.float32).tobytes()) for h, v in vectors.items()),
        )
        db.executemany(
            "INSERT OR REPLACE INTO temp.staged_tokens VALUES (?, ?, ?)",
            (
                (h, np.asarray(ids, np.int32).tobytes(), np.asarray(v, np.int8).tobytes())
                for h, (ids, v) in (tokens or {}).items()
            ),
        )

    def clear_staged(self) -> None:
        """Forget what `stage` holds (once the articles it was for are written)."""
        if self._staged:
            self._db.execute("DELETE FROM temp.staged_vectors")
            self._db.execute("DELETE FROM temp.staged_tokens")

    def put_article(
        self,
        article: PreparedArticle,
        vectors: dict[bytes, np.ndarray] | None = None,
        tokens: dict[bytes, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        """Write an article version, replacing any other version with the same key.

        Every embedded text's vector that the store lacks must be in `vectors` or staged
        (`stage`); so must the (word piece ids, int8 token vectors) of sentence texts that
        lack them, in `tokens` or staged.
        """
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._tx() as db:
            db.execute(
                "DELETE FROM articles WHERE collection = ? AND key = ?",
                (article.collection, article.key),
            )
            db.execute("DELETE FROM articles WHERE id = ?", (article.id,))
            db.execute(
                "INSERT INTO articles (id, key, collection, title, url, publisher, published,"
                " author, source, guid, text, ingested_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    article.id,
                    article.key,
                    article.collection,
                    article.title,
                    article.url,
                    article.publisher,
                    article.published,
                    article.author,
                    article.source,
                    article.guid,
                    article.text,
                    now,
                ),
            )
            db.executemany(
                "INSERT OR IGNORE INTO vectors (hash, vec) VALUES (?, ?)",
                [
                    (h, np.asarray(v, dtype=np.float32).tobytes())
                    for h, v in (vectors or {}).items()
                ],
            )
            self._insert_tokens(db, tokens or {})
            # Rows are handed over as they are made: a large article's are never all built.
            db.executemany(
                "INSERT INTO passages (article_id, idx, first, last, text, vec_hash)"
                " VALUES (?,?,?,?,?,?)",
                (
                    (article.id, i, p.first, p.last, p.text, text_hash(p.embedded))
                    for i, p in enumerate(article.passages)
                ),
            )
            db.executemany(
                "INSERT INTO sentences (article_id, idx, start, end, passage_idx, text, vec_hash)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    (
                        article.id,
                        i,
                        s.start,
                        s.end,
                        s.passage,
                        article.text[s.start : s.end],
                        text_hash(s.embedded),
                    )
                    for i, s in enumerate(article.sentences)
                ),
            )
            if self._staged:
                db.execute(
                    "INSERT OR IGNORE INTO vectors (hash, vec) SELECT hash, vec"
                    " FROM temp.staged_vectors WHERE hash IN"
                    " (SELECT vec_hash FROM sentences WHERE article_id = ?1"
                    " UNION SELECT vec_hash FROM passages WHERE article_id = ?1)",
                    (article.id,),
                )
                db.execute(
                    "INSERT OR IGNORE INTO token_vectors (hash, ids, vecs) SELECT hash, ids, vecs"
                    " FROM temp.staged_tokens WHERE hash IN"
                    " (SELECT vec_hash FROM sentences WHERE article_id = ?)",
                    (article.id,),
                )
            self._drop_orphan_vectors(db)

    @staticmethod
    def _drop_orphan_vectors(db: sqlite3.Connection) -> None:
        db.execute(
            "DELETE FROM vectors WHERE hash NOT IN (SELECT vec_hash FROM sentences)"
            " AND hash NOT IN (SELECT vec_hash FROM passages)"
        )
        db.execute("DELETE FROM token_vectors WHERE hash NOT IN (SELECT vec_hash FROM sentences)")

    def forget(self, ref: str, collection: str | None = None) -> list[ArticleInfo]:
        """Remove the articles `ref` names: an id (or its first 8+ characters), URL or key."""
        matches = self.find(ref, collection)
        if not matches:
            raise NotFoundError(
                f"no stored article matches {ref!r}; `qabot list` shows ids, titles and URLs"
            )
        with self._tx() as db:
            db.executemany("DELETE FROM articles WHERE id = ?", [(a.id,) for a in matches])
            self._drop_orphan_vectors(db)
        return matches

    def find(self, ref: str, collection: str | None = None) -> list[ArticleInfo]:
        """Articles whose id starts with `ref` (8+ chars), or whose URL, key or title is it."""
        clauses = "(url = ? OR key = ? OR title = ?"
        args: list[object] = [ref, ref, ref]
        if len(ref) >= 8:
            clauses += " OR id LIKE ?"
            args.append(ref.replace("%", "") + "%")
        clauses += ")"
        if collection is not None:
            clauses += " AND collection = ?"
            args.append(collection)
        return self._articles(where=clauses, args=args)

    def articles(
        self, *, collection: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[ArticleInfo]:
        """Stored articles with their sentence and passage counts, newest first."""
        return self._articles(collection=collection, limit=limit, offset=offset)

    def _articles(
        self,
        *,
        collection: str | None = None,
        where: str | None = None,
        args: list[object] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ArticleInfo]:
        conditions, params = [], list(args or [])
        if where:
            conditions.append(where)
        if collection is not None:
            conditions.append("a.collection = ?")
            params.append(collection)
        where = " AND ".join(conditions) if conditions else None
        return [
            article_info(r) for r in self._db.execute(listing_sql(where, limit, offset), params)
        ]

    def article_text(self, article_id: str) -> str:
        row = self._db.execute("SELECT text FROM articles WHERE id = ?", (article_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no article with id {article_id!r}")
        return str(row[0])

    def sentences_of(self, article_id: str) -> list[Sentence]:
        return [
            Sentence(article_id=article_id, index=r[0], start=r[1], end=r[2], text=r[3])
            for r in self._db.execute(
                "SELECT idx, start, end, text FROM sentences WHERE article_id = ? ORDER BY idx",
                (article_id,),
            )
        ]

    def sentence_spans(self, article_id: str) -> list[tuple[int, int, int]]:
        return self._db.execute(
            "SELECT id, start, end FROM sentences WHERE article_id = ? ORDER BY idx", (article_id,)
        ).fetchall()

    def passages_of(self, article_id: str) -> list[Passage]:
        return [
            Passage(article_id=article_id, index=r[0], first=r[1], last=r[2], text=r[3])
            for r in self._db.execute(
                "SELECT idx, first, last, text FROM passages WHERE article_id = ? ORDER BY idx",
                (article_id,),
            )
        ]

    def is_known(self, ref: str) -> bool:
        """Whether a feed entry's GUID or link is stored already (in any collection)."""
        row = self._db.execute(
            "SELECT 1 FROM articles WHERE guid = ? OR url = ? OR key = ? LIMIT 1", (ref, ref, ref)
        ).fetchone()
        return row is not None

    def stats(self) -> dict[str, object]:
        """Counts and sizes for `qabot stats`."""
        one = self._db.execute
        return {
            "store": f"sqlite at {self.path}",
            "articles": one("SELECT COUNT(*) FROM articles").fetchone()[0],
            "sentences": one("SELECT COUNT(*) FROM sentences").fetchone()[0],
            "passages": one("SELECT COUNT(*) FROM passages").fetchone()[0],
            "vectors": one("SELECT COUNT(*) FROM vectors").fetchone()[0],
            "token_vectors": one("SELECT COUNT(*) FROM token_vectors").fetchone()[0],
            "conversations": one(
                "SELECT COUNT(DISTINCT conversation) FROM conversation_turns"
            ).fetchone()[0],
            "collections": [r[0] for r in one("SELECT DISTINCT collection FROM articles")],
            "model": self.model,
            "dim": self.dim,
            "db_bytes": self.path.stat().st_size if self.path.exists() else 0,
            "generation": self.generation,
        }

    # -- feeds and votes: tables no index reads, so the generation stays -----------------

    def feeds(self, collection: str | None = None) -> list[FeedRow]:
        sql = (
            "SELECT url, collection, title, etag, last_modified, last_synced, last_error,"
            " allow_private FROM feeds"
        )
        args: tuple[object, ...] = ()
        if collection is not None:
            sql += " WHERE collection = ?"
            args = (collection,)
        rows = self._db.execute(sql + " ORDER BY collection, url", args).fetchall()
        return [(*r[:-1], bool(r[-1])) for r in rows]

    def put_feed(self, url: str, collection: str, title: str | None, allow_private: bool) -> None:
        with self.side_transaction() as db:
            db.execute(
                "INSERT INTO feeds (url, collection, title, allow_private) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (url, collection) DO UPDATE SET title = excluded.title,"
                " allow_private = excluded.allow_private",
                (url, collection, title, int(allow_private)),
            )

    def remove_feed(self, url: str, collection: str) -> None:
        with self.side_transaction() as db:
            db.execute("DELETE FROM feeds WHERE url = ? AND collection = ?", (url, collection))

    def record_feed_sync(
        self,
        url: str,
        collection: str,
        *,
        etag: str | None,
        last_modified: str | None,
        title: str | None,
        synced: str,
        error: str | None,
    ) -> None:
        with self.side_transaction() as db:
            db.execute(
                "UPDATE feeds SET etag = ?, last_modified = ?, title = ?, last_synced = ?,"
                " last_error = ? WHERE url = ? AND collection = ?",
                (etag, last_modified, title, synced, error, url, collection),
            )

    def record_answer(
        self,
        question: str,
        sentences: Sequence[str],
        article_ids: Sequence[str],
        guild_id: str | None,
        created_at: str,
    ) -> int:
        with self.side_transaction() as db:
            cur = db.execute(
                "INSERT INTO shown_answers (question, sentences, article_ids, guild_id,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (
                    question,
                    json.dumps(list(sentences), ensure_ascii=False),
                    json.dumps(list(article_ids)),
                    guild_id,
                    created_at,
                ),
            )
            return int(cur.lastrowid or 0)

    def record_vote(self, answer_id: int, user_id: str, vote: int, created_at: str) -> None:
        with self.side_transaction() as db:
            if not db.execute("SELECT 1 FROM shown_answers WHERE id = ?", (answer_id,)).fetchone():
                raise NotFoundError(f"no answer {answer_id} is recorded; it may have been cleared")
            db.execute(
                "INSERT OR REPLACE INTO answer_votes (answer_id, user_id, vote, created_at)"
                " VALUES (?, ?, ?, ?)",
                (answer_id, user_id, vote, created_at),
            )

    def votes(self) -> list[VoteRow]:
        rows = self._db.execute(
            "SELECT a.id, a.question, a.sentences, a.article_ids, v.user_id, v.vote, a.guild_id"
            " FROM answer_votes v JOIN shown_answers a ON a.id = v.answer_id"
            " ORDER BY v.created_at, a.id"
        ).fetchall()
        return [
            (r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], int(r[5]), r[6]) for r in rows
        ]

    # -- conversations (bot/conversation_log.py): no index reads them either -------------

    def conversation(self, key: str) -> list[StoredTurn]:
        rows = self._db.execute(
            "SELECT question, understood, abstained, sentences, asked_at FROM conversation_turns"
            " WHERE conversation = ? ORDER BY n",
            (key,),
        ).fetchall()
        return [stored_turn(r) for r in rows]

    def put_conversation(self, keys: Sequence[str], turns: Sequence[StoredTurn]) -> None:
        with self.side_transaction() as db:
            db.executemany(
                "DELETE FROM conversation_turns WHERE conversation = ?", [(k,) for k in keys]
            )
            db.executemany(
                f"INSERT INTO conversation_turns ({TURN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [turn_row(k, n, t) for k in keys for n, t in enumerate(turns)],
            )

    def prune_conversations(self, before: str) -> int:
        with self.side_transaction() as db:
            old = db.execute(
                "SELECT conversation FROM conversation_turns GROUP BY conversation"
                " HAVING MAX(asked_at) < ?",
                (before,),
            ).fetchall()
            db.executemany("DELETE FROM conversation_turns WHERE conversation = ?", old)
        return len(old)

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """The store as of one moment, for reads that must agree with each other (building
        the indexes): one read transaction on a connection of its own, so what other
        connections commit meanwhile is not seen, and this store's own connection (and its
        writes, from other threads) are not held up."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA query_only=ON")
            db.execute("BEGIN")
            db.execute("SELECT 1 FROM meta LIMIT 1").fetchone()  # the first read fixes it (WAL)
            yield Snapshot(db, model=self.model, dim=self.dim)
        finally:
            db.close()  # ends the read transaction

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that changes what is searched (bumps the generation)."""
        with self._tx() as db:
            yield db

    @contextmanager
    def side_transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction for tables no index reads (feeds, votes): the generation, and
        so the derived indexes, stay as they are."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
