"""Votes on answers shown in Discord, and their export as evaluation cases, kept in each
store of truth (SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.votes import export_cases, record_answer, record_vote, votes
from retriever.evaluate import load_cases
from store.errors import NotFoundError
from store.seams import Store
from tests.engines import OpenStore


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()


def test_votes_keep_question_and_answer_and_do_not_touch_the_indexes(store: Store) -> None:
    generation = store.generation
    good = record_answer(
        store, "Who led the repair?", ["Dr. Achebe led it.", "Other."], ["a", "b"], 7
    )
    bad = record_answer(store, "When did it open?", ["It rained."], ["c"], 7)
    record_vote(store, good, 1, 1)
    record_vote(store, good, 2, 1)
    record_vote(store, bad, 1, -1)
    record_vote(store, bad, 1, -1)  # voting again replaces, not adds
    assert store.generation == generation  # no reason to rebuild what is searched
    found = votes(store)
    assert len(found) == 3
    assert {(v.question, v.vote) for v in found} == {
        ("Who led the repair?", 1),
        ("When did it open?", -1),
    }
    assert found[0].sentences[0] == "Dr. Achebe led it." and found[0].guild_id == "7"
    with pytest.raises(NotFoundError):
        record_vote(store, 999, 1, 1)
    with pytest.raises(ValueError):
        record_vote(store, good, 1, 0)


def test_export_writes_the_upvoted_answers_as_cases(store: Store, tmp_path: Path) -> None:
    good = record_answer(store, "Who led the repair?", ["Dr. Achebe led it."], ["a"])
    bad = record_answer(store, "When did it open?", ["It rained."], ["c"])
    record_vote(store, good, 1, 1)
    record_vote(store, bad, 1, -1)
    path = tmp_path / "votes.jsonl"
    assert export_cases(store, path) == (1, 1)
    [case] = load_cases(path)
    assert case.question == "Who led the repair?" and case.expect == ("Dr. Achebe led it.",)
