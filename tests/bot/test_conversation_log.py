"""Conversations kept in the store for the front ends (bot/conversation_log.py), on SQLite
and PostgreSQL: a retriever's turns go in and come back as they were, a conversation keeps
its last MAX_TURNS, and a store that refuses is logged, not raised."""

from __future__ import annotations

import logging

import pytest

from bot import conversation_log
from bot.conversation_log import MAX_TURNS
from retriever.conversation import Conversation, Turn, TurnSentence
from tests.engines import OpenStore

TURN = Turn(
    question="What has his army received from Russia?",
    understood="What has the Libyan National Army (LNA) received from Russia?",
    answers=(
        TurnSentence(
            text="His LNA has taken delivery of Russian fighter jets and tanks.",
            article_id="f" * 64,
            title="Russian elite units land on Egypt-Libya border",
            score=0.66,
            start=480,
        ),
    ),
)


def test_turns_come_back_from_the_store_as_the_retriever_gave_them(
    open_store: OpenStore,
) -> None:
    store = open_store()
    declined = Turn(question="How many moons does Jupiter have?", abstained=True)
    asked = Conversation(turns=(declined, TURN))
    assert conversation_log.save(store, ["chat:a"], conversation_log.stored(asked, "2026-12-04"))
    back = conversation_log.as_conversation(conversation_log.load(store, "chat:a"))
    assert back == asked
    assert conversation_log.load(store, "chat:none") is None


def test_a_conversation_keeps_its_last_turns(open_store: OpenStore) -> None:
    store = open_store()
    turns = [
        Turn(question=f"Question {n}?").stored(f"2026-12-04T21:{n:02d}:00+00:00")
        for n in range(MAX_TURNS + 3)
    ]
    conversation_log.save(store, ["discord:thread:1"], turns)
    kept = store.conversation("discord:thread:1")
    assert [t.question for t in kept] == [f"Question {n}?" for n in range(3, MAX_TURNS + 3)]


def test_a_store_that_refuses_is_logged_and_the_caller_goes_on(
    open_store: OpenStore,
    store_kind: str,
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = open_store()
    if store_kind == "postgresql":  # the database goes away under the open store
        request.getfixturevalue("postgres_server").drop(request.getfixturevalue("postgres_url"))
    else:
        store.close()
    with caplog.at_level(logging.WARNING):
        assert conversation_log.save(store, ["chat:a"], [TURN.stored("2026-12-04")]) is False
        assert conversation_log.load(store, "chat:a") is None
        assert conversation_log.prune(store, days=30) == 0
    assert "could not keep conversation chat:a in the store" in caplog.text
    assert "could not read conversation chat:a" in caplog.text
    assert "Traceback" not in caplog.text
