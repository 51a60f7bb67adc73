"""Conversations kept in the store (store/migrations/m004_conversations.py), on SQLite and on
PostgreSQL: a conversation reads back as it was written, after the store is opened again
too; writing one never touches the articles or what is searched; old ones are pruned; an
older store gets the table."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from store.ingest import Ingestor
from store.models import RawArticle, StoredSentence, StoredTurn
from tests.doubles import HashingEmbedder
from tests.engines import OpenStore

MODEL = dict(model="hashing-64", dim=64)
WHO = StoredTurn(
    question="Who is Khalifa Hafter?",
    sentences=(
        StoredSentence(
            text="Khalifa Hafter commands the Libyan National Army (LNA).",
            article_id="a" * 64,
            title="Russian units land on the border",
            score=0.71,
            start=120,
        ),
        StoredSentence(text="He was born in Ajdabiya.", article_id="b" * 64, score=0.4),
    ),
    asked_at="2026-12-04T21:00:00+00:00",
)
RUSSIA = StoredTurn(
    question="What has his army received from Russia?",
    understood="What has the Libyan National Army (LNA) received from Russia?",
    sentences=(
        StoredSentence(
            text="His LNA has taken delivery of Russian fighter jets and tanks — “mostly”.",
            article_id="a" * 64,
            title="Russian units land on the border",
            score=0.66,
            start=480,
        ),
    ),
    asked_at="2026-12-04T21:01:30+00:00",
)
DECLINED = StoredTurn(
    question="How many moons?", abstained=True, asked_at="2026-11-01T08:00:00+00:00"
)


def _article(n: int) -> RawArticle:
    return RawArticle(
        key=f"a{n}",
        title=f"Article {n}",
        text=f"The council met on day {n} to talk about roads. It voted for repairs {n}.",
    )


def test_a_conversation_reads_back_whole_under_each_key_and_after_reopening(
    open_store: OpenStore,
) -> None:
    store = open_store(**MODEL)
    generation = store.generation
    keys = ["discord:thread:11", "discord:message:12"]
    store.put_conversation(keys, [WHO, RUSSIA])
    assert store.generation == generation  # nothing searched changed: no index rebuild
    store.close()
    store = open_store(**MODEL)  # a restarted process
    for key in keys:
        assert store.conversation(key) == [WHO, RUSSIA]
    assert store.conversation("discord:thread:99") == []
    assert store.stats()["conversations"] == 2
    # Written again, a key holds what it was given last; no turns forget it.
    store.put_conversation(["discord:thread:11"], [RUSSIA])
    assert store.conversation("discord:thread:11") == [RUSSIA]
    assert store.conversation("discord:message:12") == [WHO, RUSSIA]
    store.put_conversation(["discord:message:12"], [])
    assert store.conversation("discord:message:12") == []


def test_a_failed_conversation_write_leaves_the_store_as_it_was(open_store: OpenStore) -> None:
    store = open_store(**MODEL)
    Ingestor(store, HashingEmbedder()).ingest([_article(n) for n in range(3)])
    articles = store.articles()
    units = list(store.iter_units("sentences"))
    generation = store.generation
    store.put_conversation(["chat:harbor"], [WHO])
    # One key given twice: the second copy of the turn collides and the whole write is
    # undone, the conversation it would have replaced included.
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):
        store.put_conversation(["chat:harbor", "chat:harbor"], [RUSSIA])
    assert store.conversation("chat:harbor") == [WHO]
    assert store.articles() == articles and list(store.iter_units("sentences")) == units
    assert store.generation == generation
    # ...and the store goes on taking articles and conversations.
    Ingestor(store, HashingEmbedder()).ingest([_article(3)])
    store.put_conversation(["chat:harbor"], [WHO, RUSSIA])
    assert len(store.articles()) == 4 and store.conversation("chat:harbor") == [WHO, RUSSIA]


def test_pruning_forgets_conversations_whose_last_turn_is_older(open_store: OpenStore) -> None:
    store = open_store(**MODEL)
    store.put_conversation(["discord:thread:1"], [DECLINED])  # last asked 2026-11-01
    store.put_conversation(["discord:thread:2"], [DECLINED, WHO])  # last asked 2026-12-04
    store.put_conversation(["chat:old"], [DECLINED])
    assert store.prune_conversations("2026-12-01T00:00:00+00:00") == 2
    assert store.conversation("discord:thread:1") == [] and store.conversation("chat:old") == []
    assert store.conversation("discord:thread:2") == [DECLINED, WHO]
    assert store.prune_conversations("2026-12-01T00:00:00+00:00") == 0


def test_an_older_store_gets_the_conversations_table(open_store: OpenStore) -> None:
    store = open_store(**MODEL)
    Ingestor(store, HashingEmbedder()).ingest([_article(1)])
    with store.transaction() as db:  # type: ignore[attr-defined]
        db.execute("DROP TABLE conversation_turns")
        db.execute("DELETE FROM meta WHERE key = 'migration:4'")
    store.close()
    store = open_store(**MODEL)
    assert 4 in store.migrations_done()
    store.put_conversation(["chat:x"], [WHO])
    assert store.conversation("chat:x") == [WHO] and len(store.articles()) == 1
