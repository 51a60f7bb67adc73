"""A server that does not grant the bot everything: a mention is still answered.

simcord gives the bot every permission except Administrator, so channel overwrites apply
to it as on Discord; each test takes permissions away with an overwrite on the bot.
"""

from __future__ import annotations

import logging

import discord
import pytest

from tests.bot.conftest import World
from tests.bot.test_discord import BRIDGE_ANSWER, BRIDGE_QUESTION

pytestmark = pytest.mark.slow


def channel_without(world: World, *denied: str):  # type: ignore[no-untyped-def]
    """A new channel where the bot lacks the `denied` permissions."""
    bot_user = world.env.bot.user
    assert bot_user is not None
    overwrite = discord.PermissionOverwrite(**dict.fromkeys(denied, False))
    return world.guild.create_text_channel("locked", overwrites={bot_user: overwrite})


def mention(world: World) -> str:
    bot_user = world.env.bot.user
    assert bot_user is not None
    return f"<@{bot_user.id}> {BRIDGE_QUESTION}"


def bot_messages(world: World, channel) -> list[discord.Message]:  # type: ignore[no-untyped-def]
    """What the bot posted in `channel`, leaving out Discord's "started a thread" notices."""
    bot_user = world.env.bot.user
    assert bot_user is not None
    return [
        m
        for m in channel.history()
        if m.author.id == bot_user.id and m.type != discord.MessageType.thread_created
    ]


@pytest.mark.parametrize(
    ("denied", "named"),
    [
        ("create_public_threads", "Create Public Threads"),
        ("send_messages_in_threads", "Send Messages in Threads"),
    ],
)
async def test_without_thread_permissions_a_mention_is_answered_in_the_channel(
    world: World, denied: str, named: str
) -> None:
    channel = channel_without(world, denied)
    await world.member.send(channel, mention(world))
    assert channel.threads == []
    [reply] = bot_messages(world, channel)
    assert BRIDGE_ANSWER in reply.content
    assert named in reply.content  # says why it is not in a thread
    assert len(reply.content) <= 2000 and reply.flags.suppress_embeds  # no preview cards
    labels = [c.emoji.name for row in reply.components for c in row.children]  # type: ignore[union-attr]
    assert labels == ["👍", "👎"]


async def test_a_follow_up_in_a_thread_it_can_no_longer_post_in_is_answered_beside_it(
    world: World,
) -> None:
    from simcord.backend.models import Overwrite
    from simcord.enums import OverwriteType

    await world.member.send(world.channel, mention(world))
    [thread] = world.channel.threads
    bot_user = world.env.bot.user
    assert bot_user is not None
    world.env.backend.set_overwrite(
        world.channel.id,
        Overwrite(
            target_id=bot_user.id,
            type=OverwriteType.MEMBER,
            allow=0,
            deny=discord.Permissions(send_messages_in_threads=True).value,
        ),
    )
    await world.member.send(thread, "How many apple trees did the volunteers plant?")
    reply = world.channel.last_message
    assert reply is not None and reply.author.id == bot_user.id
    assert thread.last_message is not None and thread.last_message.author.id != bot_user.id
    assert "40" in reply.content or "forty" in reply.content.lower()
    assert "Send Messages in Threads" in reply.content


async def test_with_no_permission_to_send_nothing_breaks_and_it_is_logged_once(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    channel = channel_without(
        world, "send_messages", "send_messages_in_threads", "create_public_threads"
    )
    caplog.set_level(logging.INFO, logger="bot")
    await world.member.send(channel, mention(world))
    await world.member.send(channel, mention(world))
    assert bot_messages(world, channel) == [] and channel.threads == []
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "Send Messages" in warnings[0].getMessage()
    assert "locked" in warnings[0].getMessage()
    assert not warnings[0].exc_info  # a permission, not a crash: no traceback
    # The bot still answers where it may.
    await world.member.send(world.channel, mention(world))
    [thread] = world.channel.threads
    assert thread.last_message is not None and BRIDGE_ANSWER in thread.last_message.content


@pytest.mark.bot_settings(QABOT_COOLDOWN_QUESTIONS=1, QABOT_COOLDOWN_SECONDS=30)
async def test_where_it_may_post_only_in_threads_the_cooldown_is_said_in_one(
    world: World,
) -> None:
    channel = channel_without(world, "send_messages")
    await world.member.send(channel, mention(world))
    await world.member.send(channel, mention(world))
    first, second = channel.threads
    assert first.last_message is not None and BRIDGE_ANSWER in first.last_message.content
    assert second.last_message is not None and "try again in 30 s" in second.last_message.content
    assert bot_messages(world, channel) == []
