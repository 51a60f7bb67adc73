"""Conversations on Discord, through simcord and the real discord.py, on a store holding the
pasted DEBKA article (../shared/data/articles) and the project's samples: the follow-ups of
issue 20 answered in the thread a mention opened, after a restart too, and a Discord reply to
one of the bot's answers followed on from that answer, in a channel too; after a restart
from the conversation the store kept, and from Discord's history for one it did not."""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from bot.conversation_log import thread_key
from bot.discord_app import QABot
from bot.discord_format import ABSTAIN_REPLY
from store.db import Store
from store.ingest import Ingestor
from store.sources.files import find_files, load_file
from tests.bot.conftest import COLLECTION, World, reply_of
from tests.bot.test_chat import CAIRO, DELIVERY, RUSSIA, VISIT, WHO
from tests.bot.test_discord_permissions import channel_without
from tests.conftest import PROJECT_SAMPLES, SAMPLE_ARTICLE, need_shared

pytestmark = pytest.mark.slow

BRIDGE_ANSWER = "The repair was led by Dr. Samuel K. Achebe of Northline Engineering."


@pytest.fixture(scope="module")
def chat_store(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Path:  # type: ignore[no-untyped-def]
    """The store of issue 20's Discord thread: the pasted article and the samples."""
    folder = tmp_path_factory.mktemp("discord-chat")
    store = Store(folder / "qabot.sqlite3", model=real_embedder.name, dim=real_embedder.dim)
    try:
        items = [item for f in find_files(PROJECT_SAMPLES) for item in load_file(f)]
        items += load_file(need_shared(SAMPLE_ARTICLE))
        report = Ingestor(store, real_embedder).ingest(items, collection=COLLECTION)  # type: ignore[arg-type]
        assert len(report.added) == 5 and not report.skipped
    finally:
        store.close()
    return folder


@pytest.fixture
def data_dir(chat_store: Path, tmp_path: Path) -> Path:
    """A private copy of it for each test (the bot records answers in it)."""
    folder = tmp_path / "data"
    shutil.copytree(chat_store, folder)
    return folder


def _bot_said(channel: object, me: int) -> str:
    last = channel.last_message  # type: ignore[attr-defined]
    assert last is not None and last.author.id == me, "the bot did not answer"
    return str(last.content)


async def test_follow_ups_in_the_thread_are_read_in_its_light(world: World) -> None:
    me = world.env.bot.user
    assert me is not None
    await world.member.send(world.channel, f"<@{me.id}> {WHO}")
    [thread] = world.channel.threads
    assert "Hafter" in _bot_said(thread, me.id)
    await world.member.send(thread, RUSSIA)
    assert DELIVERY in _bot_said(thread, me.id)
    await world.member.send(thread, CAIRO)
    said = _bot_said(thread, me.id)
    assert VISIT in said and "El-Sisi" in said
    # A question that names what it asks about is answered as if asked alone.
    await world.member.send(thread, "Who led the bridge repair?")
    assert BRIDGE_ANSWER in _bot_said(thread, me.id)


async def test_the_same_question_in_a_new_thread_has_nothing_to_lean_on(world: World) -> None:
    me = world.env.bot.user
    assert me is not None
    await world.member.send(world.channel, f"<@{me.id}> {CAIRO}")
    [thread] = world.channel.threads
    assert VISIT not in _bot_said(thread, me.id)


async def test_a_thread_is_followed_after_a_restart(world: World, simcord_bot: QABot) -> None:
    me = world.env.bot.user
    assert me is not None
    await world.member.send(world.channel, f"<@{me.id}> {WHO}")
    [thread] = world.channel.threads
    await world.member.send(thread, RUSSIA)
    assert DELIVERY in _bot_said(thread, me.id)
    # What a restart loses: every conversation the process held. The thread is read back
    # from Discord (the question it was opened from, then the members' messages).
    simcord_bot.conversations.forget_all()
    await world.member.send(thread, CAIRO)
    said = _bot_said(thread, me.id)
    assert VISIT in said and "El-Sisi" in said


@pytest.mark.bot_settings(QABOT_COOLDOWN_QUESTIONS=20)
async def test_a_reply_to_an_answer_follows_that_answer_in_a_channel_too(
    world: World, simcord_bot: QABot
) -> None:
    me = world.env.bot.user
    assert me is not None
    # Where the bot may not open threads it answers in the channel, in reply.
    channel = channel_without(world, "create_public_threads")
    question = await world.member.send(channel, f"<@{me.id}> {WHO}")
    answer = channel.last_message
    assert answer is not None and answer.author.id == me.id and not channel.threads
    # A reply (no mention) to that answer is a follow-up to it, answered in reply.
    await world.member.send(channel, RUSSIA, reply_to=answer)
    second = channel.last_message
    assert second is not None and second.author.id == me.id
    assert DELIVERY in second.content
    assert second.reference is not None
    # Another member replies to that answer after a restart: the chain is read back.
    simcord_bot.conversations.forget_all()
    await world.admin.send(channel, CAIRO, reply_to=second)
    third = channel.last_message
    assert third is not None and third.author.id == me.id
    assert VISIT in third.content
    # A reply to a member's message, not the bot's, is left alone.
    before = len(channel.history())
    await world.member.send(channel, CAIRO, reply_to=question)
    assert len(channel.history()) == before + 1


async def test_a_follow_up_with_nothing_to_lean_on_still_says_it_found_nothing(
    world: World,
) -> None:
    me = world.env.bot.user
    assert me is not None
    await world.member.send(world.channel, f"<@{me.id}> How many moons does Jupiter have?")
    [thread] = world.channel.threads
    assert _bot_said(thread, me.id) == ABSTAIN_REPLY
    await world.member.send(thread, "And how big is it?")
    assert _bot_said(thread, me.id) == ABSTAIN_REPLY


async def test_a_reply_to_an_ask_answer_follows_up_on_it(world: World) -> None:
    me = world.env.bot.user
    assert me is not None
    result = await world.member.slash(world.channel, "ask", question=WHO)
    answer = reply_of(result)
    assert "Hafter" in answer.content
    await world.member.send(world.channel, CAIRO, reply_to=answer.message)
    follow = world.channel.last_message
    assert follow is not None and follow.author.id == me.id
    assert VISIT in follow.content  # asked alone, it finds nothing (the test above)
    assert not world.channel.threads  # answered where it was asked, in reply


READ_BACK = "earlier questions again"  # what the log says when Discord's history is asked again


async def test_a_restarted_bot_follows_the_thread_from_the_store_without_asking_again(
    world: World,
    make_bot,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    me = world.env.bot.user
    assert me is not None
    opened = await world.member.send(world.channel, f"<@{me.id}> {WHO}")
    [thread] = world.channel.threads
    asked = await world.member.send(thread, RUSSIA)
    assert DELIVERY in _bot_said(thread, me.id)
    # A new bot process on the same data folder: nothing in memory...
    await world.env.restart_bot(make_bot())
    # ...and nothing in Discord to read back: the member deleted both earlier questions.
    await world.member.delete(asked)
    await world.member.delete(opened)
    with caplog.at_level(logging.INFO):
        await world.member.send(thread, CAIRO)
    said = _bot_said(thread, me.id)
    assert VISIT in said and "El-Sisi" in said  # asked alone, it finds nothing (above)
    assert READ_BACK not in caplog.text


async def test_a_thread_the_store_did_not_keep_is_read_back_from_discord_once(
    world: World,
    make_bot,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    me = world.env.bot.user
    assert me is not None
    await world.member.send(world.channel, f"<@{me.id}> {WHO}")
    [thread] = world.channel.threads
    await world.member.send(thread, RUSSIA)
    # As a store from before conversations were kept: it has none.
    db = sqlite3.connect(data_dir / "qabot.sqlite3")
    with db:
        db.execute("DELETE FROM conversation_turns")
    await world.env.restart_bot(make_bot())
    with caplog.at_level(logging.INFO):
        await world.member.send(thread, CAIRO)
    said = _bot_said(thread, me.id)
    assert VISIT in said and "El-Sisi" in said
    assert "asking its 2 earlier questions again" in caplog.text
    # From then on the store has it: the thread's three turns, in order.
    kept = db.execute(
        "SELECT question FROM conversation_turns WHERE conversation = ? ORDER BY n",
        (thread_key(thread.id),),
    ).fetchall()
    db.close()
    assert [q for (q,) in kept] == [WHO, RUSSIA, CAIRO]


@pytest.mark.simcord(settle_timeout=60)  # two writes each wait out SQLite's 5 s for the lock
async def test_a_store_that_refuses_writes_does_not_stop_the_answers(
    world: World, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    me = world.env.bot.user
    assert me is not None
    await world.member.send(world.channel, f"<@{me.id}> {WHO}")
    [thread] = world.channel.threads
    # Another process holds the store's write lock past SQLite's 5 s wait.
    holder = sqlite3.connect(data_dir / "qabot.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        await world.member.send(thread, RUSSIA)
        said = thread.last_message
        assert said is not None and said.author.id == me.id
        assert DELIVERY in said.content  # answered, in the light of the thread
        assert "could not keep conversation" in caplog.text and "locked" in caplog.text
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # The conversation lived on in memory: the next follow-up still leans on both turns.
    await world.member.send(thread, CAIRO)
    assert VISIT in _bot_said(thread, me.id)


async def test_a_starting_bot_forgets_conversations_untouched_for_the_set_days(
    world: World,
    make_bot,
    data_dir: Path,  # type: ignore[no-untyped-def]
) -> None:
    me = world.env.bot.user
    assert me is not None
    await world.member.send(world.channel, f"<@{me.id}> {WHO}")
    [thread] = world.channel.threads
    db = sqlite3.connect(data_dir / "qabot.sqlite3")
    with db:  # a thread last answered long ago
        db.execute(
            "INSERT INTO conversation_turns VALUES ('discord:thread:7', 0, 'Old?', '', 1, '[]',"
            " '2020-01-01T00:00:00+00:00')"
        )
    await world.env.restart_bot(make_bot(QABOT_CONVERSATION_DAYS=30))
    kept = {k for (k,) in db.execute("SELECT DISTINCT conversation FROM conversation_turns")}
    db.close()
    assert "discord:thread:7" not in kept and thread_key(thread.id) in kept


async def test_a_bot_process_on_the_same_postgresql_follows_another_ones_thread(
    world: World,
    postgres_url: str,
    tmp_path: Path,
    real_embedder,  # type: ignore[no-untyped-def]
) -> None:
    """Two bot processes on one database (QABOT_DATABASE_URL), each with its own data
    folder, as on two machines: the second follows on the thread the first answered."""
    from bot.discord_app import create_bot
    from retriever.retriever import Retriever
    from store.postgres import PostgresStore
    from tests.bot.conftest import bot_settings

    model = {"model": real_embedder.name, "dim": real_embedder.dim}
    store = PostgresStore(postgres_url, **model)
    items = [item for f in find_files(PROJECT_SAMPLES) for item in load_file(f)]
    items += load_file(need_shared(SAMPLE_ARTICLE))
    Ingestor(store, real_embedder).ingest(items, collection=COLLECTION)  # type: ignore[arg-type]
    store.close()
    bots = []
    for machine in ("one", "two"):
        retriever = Retriever(
            PostgresStore(postgres_url, **model), real_embedder, tmp_path / machine
        )
        bots.append(create_bot(retriever, bot_settings(tmp_path / machine)))
    try:
        await world.env.restart_bot(bots[0])
        me = world.env.bot.user
        assert me is not None
        opened = await world.member.send(world.channel, f"<@{me.id}> {WHO}")
        [thread] = world.channel.threads
        asked = await world.member.send(thread, RUSSIA)
        assert DELIVERY in _bot_said(thread, me.id)
        await world.env.restart_bot(bots[1])
        await world.member.delete(asked)
        await world.member.delete(opened)
        await world.member.send(thread, CAIRO)
        said = _bot_said(thread, me.id)
        assert VISIT in said and "El-Sisi" in said
    finally:
        for bot in bots:
            bot.service.close()
            bot.service.retriever.store.close()


@pytest.mark.bot_settings(QABOT_COOLDOWN_QUESTIONS=20)
async def test_a_reply_chain_the_store_did_not_keep_is_read_back_once_then_kept(
    world: World,
    make_bot,
    data_dir: Path,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    me = world.env.bot.user
    assert me is not None
    channel = channel_without(world, "create_public_threads")
    await world.member.send(channel, f"<@{me.id}> {WHO}")
    await world.member.send(channel, RUSSIA, reply_to=channel.last_message)
    second = channel.last_message
    assert second is not None and DELIVERY in second.content
    db = sqlite3.connect(data_dir / "qabot.sqlite3")
    with db:  # as a store from before conversations were kept
        db.execute("DELETE FROM conversation_turns")
    await world.env.restart_bot(make_bot(QABOT_COOLDOWN_QUESTIONS=20))
    with caplog.at_level(logging.INFO):
        await world.admin.send(channel, CAIRO, reply_to=second)
    assert channel.last_message is not None and VISIT in channel.last_message.content
    assert "asking its 2 earlier questions again" in caplog.text
    # The chain up to that answer is kept now: the next reply to it reads the store.
    kept = db.execute(
        "SELECT question FROM conversation_turns WHERE conversation = ? ORDER BY n",
        (f"discord:message:{second.id}",),
    ).fetchall()
    db.close()
    assert [q for (q,) in kept] == [WHO, RUSSIA]
