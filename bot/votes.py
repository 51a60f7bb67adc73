"""Answers people saw in Discord and their 👍 / 👎 votes, kept to become evaluation cases.

The store keeps them (its `record_answer`, `record_vote` and `votes`, on SQLite or
PostgreSQL).

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

from store.seams import Store


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
    guild = None if guild_id is None else str(guild_id)
    return store.record_answer(question, sentences, article_ids, guild, _now())


def record_vote(store: Store, answer_id: int, user_id: int | str, vote: int) -> None:
    """One vote per person per answer; voting again replaces it."""
    if vote not in (-1, 1):
        raise ValueError("a vote is +1 or -1")
    store.record_vote(answer_id, str(user_id), vote, _now())  # NotFoundError without it


def votes(store: Store) -> list[Vote]:
    """Every vote with the answer it is about, oldest first."""
    return [Vote(*row) for row in store.votes()]


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
