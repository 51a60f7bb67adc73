"""Conversations on Discord, through simcord and the real discord.py with the real model: a
thread the bot opened is one conversation, and a reply to an answer follows up on it.

The server's articles are the issue's: `../shared/data/articles/` and `samples/articles/`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from store.db import Store
from store.ingest import Ingestor
from store.sources.files import find_files, load_file
from tests.bot.conftest import COLLECTION, World, reply_of
from tests.conftest import PROJECT_SAMPLES, SAMPLE_ARTICLE, need_shared

pytestmark = pytest.mark.slow

DELIVERY = "His LNA has taken delivery of Russian fighter jets and tanks"
VISIT = "the Libyan general visited Cairo to discuss the details of cooperation"


@pytest.fixture(scope="module")
def news_store(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Path:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("discord-news")
    store = Store(folder / "qabot.sqlite3", model=real_embedder.name, dim=real_embedder.dim)
    items = [item for f in find_files(PROJECT_SAMPLES) for item in load_file(f)]  # type: ignore[arg-type]
    items += list(load_file(need_shared(SAMPLE_ARTICLE)))
    assert Ingestor(store, real_embedder).ingest(items, collection=COLLECTION).added
    store.close()
    return folder


@pytest.fixture
def data_dir(news_store: Path, tmp_path: Path) -> Path:
    """The bot's data folder (the conftest's `make_bot` reads it): a copy of the store."""
    folder = tmp_path / "data"
    shutil.copytree(news_store, folder)
    return folder


async def test_a_thread_is_one_conversation(world: World) -> None:
    bot_user = world.env.bot.user
    assert bot_user is not None
    await world.member.send(world.channel, f"<@{bot_user.id}> Who is Khalifa Hafter?")
    [thread] = world.channel.threads
    await world.member.send(thread, "What has his army received from Russia?")
    russia = thread.last_message
    assert russia is not None and russia.author.id == bot_user.id
    assert DELIVERY in russia.content
    await world.member.send(thread, "Whom did he meet in Cairo?")
    cairo = thread.last_message
    assert cairo is not None and VISIT in cairo.content
    # A clearly new question in the same thread is answered as if asked alone.
    await world.member.send(thread, "Who led the bridge repair?")
    bridge = thread.last_message
    assert bridge is not None and "Dr. Samuel K. Achebe" in bridge.content


async def test_a_thread_is_read_back_after_a_restart(world: World) -> None:
    """What the bot kept in memory is gone after a restart: the thread's own messages
    tell it the conversation so far."""
    bot = world.env.bot
    assert bot.user is not None
    await world.member.send(world.channel, f"<@{bot.user.id}> Who is Khalifa Hafter?")
    [thread] = world.channel.threads
    await world.member.send(thread, "What has his army received from Russia?")
    bot._conversations.clear()  # type: ignore[attr-defined]  # as a restarted bot has it
    await world.member.send(thread, "Whom did he meet in Cairo?")
    cairo = thread.last_message
    assert cairo is not None and VISIT in cairo.content


async def test_a_reply_to_an_answer_follows_up_on_it(world: World) -> None:
    result = await world.member.slash(world.channel, "ask", question="Who led the bridge repair?")
    answer = reply_of(result)
    assert "Dr. Samuel K. Achebe" in answer.content
    await world.member.send(
        world.channel, "What did he say the new cables are coated in?", reply_to=answer.message
    )
    [thread] = world.channel.threads  # answered like a mention: in a thread of its own
    follow = thread.last_message
    assert follow is not None and "coated in zinc" in follow.content
