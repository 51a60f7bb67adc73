"""Answers people saw in Discord and their 👍 / 👎 votes, kept to become evaluation cases.

The tables (`shown_answers`, `answer_votes`) are in store/db.py's schema.

An answer is recorded when it is shown (its question, the quoted sentences and their
articles); a vote points at it. `export_cases` writes the 👍 answers in the format
`qabot eval cases` reads, so what users confirmed becomes a regression test.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from store.db import Store
from store.errors import NotFoundError


@dataclass(frozen=True)
class Vote:
    answer_id: int
    question: str
    sentences: list[str]
    article_ids: list[str]
    user_id: str
    vote: int  # +1 or -1
    guild_id: str | None


def record_answer(
    store: Store,
    question: str,
    sentences: Sequence[str],
    article_ids: Sequence[str],
    guild_id: int | str | None = None,
) -> int:
    """Remember an answer that was shown; returns its id for the vote buttons."""
    with store.side_transaction() as db:
        cur = db.execute(
            "INSERT INTO shown_answers (question, sentences, article_ids, guild_id, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                question,
                json.dumps(list(sentences), ensure_ascii=False),
                json.dumps(list(article_ids)),
                None if guild_id is None else str(guild_id),
                _now(),
            ),
        )
        return int(cur.lastrowid or 0)


def record_vote(store: Store, answer_id: int, user_id: int | str, vote: int) -> None:
    """One vote per person per answer; voting again replaces it."""
    if vote not in (-1, 1):
        raise ValueError("a vote is +1 or -1")
    with store.side_transaction() as db:
        if db.execute("SELECT 1 FROM shown_answers WHERE id = ?", (answer_id,)).fetchone() is None:
            raise NotFoundError(f"no answer {answer_id} is recorded; it may have been cleared")
        db.execute(
            "INSERT OR REPLACE INTO answer_votes (answer_id, user_id, vote, created_at)"
            " VALUES (?, ?, ?, ?)",
            (answer_id, str(user_id), vote, _now()),
        )


def votes(store: Store) -> list[Vote]:
    """Every vote with the answer it is about, oldest first."""
    rows = store.execute(
        "SELECT a.id, a.question, a.sentences, a.article_ids, v.user_id, v.vote, a.guild_id"
        " FROM answer_votes v JOIN shown_answers a ON a.id = v.answer_id"
        " ORDER BY v.created_at, a.id"
    ).fetchall()
    return [
        Vote(r[0], r[1], json.loads(r[2]), json.loads(r[3]), r[4], int(r[5]), r[6]) for r in rows
    ]


def export_cases(store: Store, path: Path) -> tuple[int, int]:
    """Write the 👍 answers as `qabot eval cases` lines; returns (written, 👎 left out).

    A case expects the first quoted sentence, the one the voter saw first. An answer with
    more 👎 than 👍 is left out: a 👎 says the answer was wrong, not what is right, so it
    is for reading (`qabot votes list`), not for scoring.
    """
    tally: dict[int, tuple[Vote, int]] = {}
    for v in votes(store):
        first, total = tally.get(v.answer_id, (v, 0))
        tally[v.answer_id] = (first, total + v.vote)
    written = left_out = 0
    seen: set[str] = set()
    lines = []
    for vote, total in tally.values():
        if total <= 0 or not vote.sentences:
            left_out += 1
            continue
        if vote.question in seen:
            continue
        seen.add(vote.question)
        lines.append(json.dumps({"question": vote.question, "expect": [vote.sentences[0]]}))
        written += 1
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return written, left_out


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
