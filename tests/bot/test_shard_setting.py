"""QABOT_DISCORD_SHARD: which discord.py shards this process runs, and bad values refused.
(Two shard processes on one database: test_discord_shards.py.)"""

from __future__ import annotations

from pathlib import Path

import discord
import pytest
import simcord

from bot.discord_app import QABot, ShardedQABot, create_bot
from bot.errors import SettingsError
from bot.settings import load_settings
from retriever.retriever import Retriever
from store.db import Store
from tests.bot.conftest import bot_settings
from tests.doubles import HashingEmbedder

ON_SHARD = {0: 2 << 22, 1: 3 << 22}  # (id >> 22) % 2 is the shard that owns the server


def _bot(folder: Path, **settings: object) -> QABot:
    embedder = HashingEmbedder()
    store = Store(folder / "qabot.sqlite3", model=embedder.name, dim=embedder.dim)
    return create_bot(
        Retriever(store, embedder, folder / "index"), bot_settings(folder, **settings)
    )


@pytest.mark.parametrize(("value", "ids", "count"), [("1/2", [1], 2), ("0, 2/4", [0, 2], 4)])
def test_the_setting_names_the_shards_and_their_count(
    monkeypatch: pytest.MonkeyPatch, value: str, ids: list[int], count: int
) -> None:
    monkeypatch.setenv("QABOT_DISCORD_SHARD", value)
    assert load_settings().discord_shards == (ids, count)


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("1", r"'1' is not IDS/COUNT; write 0/2 for shard 0 of 2"),
        ("2/2", r"'2/2': each shard id must be below the count, 2"),
        ("1,1/2", r"'1,1/2': each shard id must be below the count, 2, and named once"),
    ],
)
def test_a_shard_that_cannot_be_is_refused_with_the_form(
    monkeypatch: pytest.MonkeyPatch, value: str, said: str
) -> None:
    monkeypatch.setenv("QABOT_DISCORD_SHARD", value)
    with pytest.raises(SettingsError, match=rf"QABOT_DISCORD_SHARD: {said}"):
        load_settings()


async def test_a_shard_receives_only_the_servers_it_owns_and_only_shard_0_syncs_feeds(
    tmp_path: Path,
) -> None:
    unsharded = _bot(tmp_path / "one", QABOT_FEED_SYNC_MINUTES=30)
    assert type(unsharded) is QABot
    for shard in (0, 1):
        bot = _bot(
            tmp_path / str(shard), QABOT_DISCORD_SHARD=f"{shard}/2", QABOT_FEED_SYNC_MINUTES=30
        )
        assert isinstance(bot, ShardedQABot) and isinstance(bot, discord.AutoShardedClient)
        async with simcord.run(bot) as env:
            for owner, guild_id in ON_SHARD.items():
                env.create_guild(f"Readers {owner}", id=guild_id)
            assert [g.id for g in bot.guilds] == [ON_SHARD[shard]]
            # Feeds belong to the store all shards share: one process syncs them.
            assert (bot._feed_loop is not None) == (shard == 0)
        bot.service.close()
    unsharded.service.close()
