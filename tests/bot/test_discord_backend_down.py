"""A search engine that is down: the bot says so in Discord, logs where, and carries on.

The indexes live in a Qdrant at a port nothing listens on (a real connection refused, through
qdrant-client); the store itself is the local SQLite one, so listing articles still works.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bot.discord_app import QABot, create_bot
from bot.discord_format import BACKEND_DOWN_REPLY
from retriever.retriever import Retriever
from store.db import Store
from store.indexes.qdrant import QdrantIndexes, open_transport
from tests.bot.conftest import World, bot_settings, reply_of

pytestmark = pytest.mark.slow

BRIDGE_QUESTION = "Who led the bridge repair?"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def qdrant_url() -> str:
    return f"http://qabot:s3cret@127.0.0.1:{_closed_port()}"


@pytest.fixture
def simcord_bot(data_dir: Path, real_embedder, qdrant_url: str):  # type: ignore[no-untyped-def]
    store = Store(data_dir / "qabot.sqlite3", model=real_embedder.name, dim=real_embedder.dim)
    search = QdrantIndexes(open_transport(qdrant_url, "k3y-k3y", "qabot", data_dir))
    retriever = Retriever(store, real_embedder, data_dir / "index", search=search)
    bot: QABot = create_bot(retriever, bot_settings(data_dir))
    yield bot
    bot.service.close()


@pytest.fixture
def world(simcord_env) -> World:  # type: ignore[no-untyped-def]
    return World(simcord_env)


async def test_a_mention_is_told_the_search_is_down_and_the_log_names_it_masked(
    world: World, qdrant_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bot_user = world.env.bot.user
    assert bot_user is not None
    await world.member.send(world.channel, f"<@{bot_user.id}> {BRIDGE_QUESTION}")
    [thread] = world.channel.threads
    said = thread.last_message
    assert said is not None and said.author.id == bot_user.id
    assert said.content == BACKEND_DOWN_REPLY
    masked = qdrant_url.replace("s3cret", "***")
    assert f"Qdrant at {masked} is not answering" in caplog.text
    assert "s3cret" not in caplog.text and "k3y-k3y" not in caplog.text
    assert "Traceback" not in caplog.text


async def test_ask_is_told_the_search_is_down_and_the_bot_carries_on(world: World) -> None:
    failed = await world.member.slash(world.channel, "ask", question=BRIDGE_QUESTION)
    assert reply_of(failed).content == BACKEND_DOWN_REPLY
    assert "s3cret" not in reply_of(failed).content
    # The store is not the engine that is down: what it holds is still listed.
    listed = await world.member.slash(world.channel, "sources")
    assert "Harbor Bridge reopens after two-year repair" in reply_of(listed).content
    again = await world.member.slash(world.channel, "ask", question=BRIDGE_QUESTION)
    assert reply_of(again).content == BACKEND_DOWN_REPLY
