"""What the two SQL stores (SQLite, `db.py`; PostgreSQL, `postgres.py`) share: the query
that lists articles with their counts, and how its rows become `ArticleInfo`; how a
conversation's turn becomes a row and back. The placeholders in `where` are each store's
own (`?` or `%s`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from store.models import ArticleInfo, StoredSentence, StoredTurn

_LISTING = (
    "SELECT a.id, a.key, a.collection, a.title, a.url, a.publisher, a.published,"
    " a.author, a.source, a.ingested_at,"
    " (SELECT COUNT(*) FROM sentences s WHERE s.article_id = a.id),"
    " (SELECT COUNT(*) FROM passages p WHERE p.article_id = a.id)"
    " FROM articles a"
)


def listing_sql(where: str | None = None, limit: int | None = None, offset: int = 0) -> str:
    """Articles newest first, with their sentence and passage counts."""
    sql = _LISTING + (f" WHERE {where}" if where else "")
    sql += " ORDER BY a.ingested_at DESC, a.title"
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    return sql


def article_info(r: Sequence[Any]) -> ArticleInfo:
    """A row of `listing_sql` as an `ArticleInfo`."""
    return ArticleInfo(
        id=r[0],
        key=r[1],
        collection=r[2],
        title=r[3],
        url=r[4],
        publisher=r[5],
        published=r[6],
        author=r[7],
        source=r[8],
        ingested_at=datetime.fromisoformat(r[9]),
        sentences=r[10],
        passages=r[11],
    )


# conversation_turns (store/migrations/m004_conversations.py), in both stores' column order.
TURN_COLUMNS = "conversation, n, question, understood, abstained, sentences, asked_at"


def turn_row(key: str, n: int, turn: StoredTurn) -> tuple[object, ...]:
    """The row that keeps `turn` as turn `n` of the conversation `key`."""
    sentences = [s.model_dump() for s in turn.sentences]
    return (
        key,
        n,
        turn.question,
        turn.understood,
        int(turn.abstained),
        json.dumps(sentences, ensure_ascii=False),
        turn.asked_at,
    )


def stored_turn(r: Sequence[Any]) -> StoredTurn:
    """A row of (question, understood, abstained, sentences, asked_at) as a `StoredTurn`."""
    return StoredTurn(
        question=r[0],
        understood=r[1],
        abstained=bool(r[2]),
        sentences=tuple(StoredSentence(**s) for s in json.loads(r[3])),
        asked_at=r[4],
    )
