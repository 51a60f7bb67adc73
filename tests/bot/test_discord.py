"""The Discord bot, driven offline through the real discord.py by simcord.

Every test runs the real bot (`create_bot`) on a real store with the real model; simcord
plays Discord: guilds, members, permissions, slash commands, buttons and threads.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from bot.discord_format import ABSTAIN_REPLY, MESSAGE_LIMIT
from store.ingest import Ingestor
from store.models import RawArticle
from tests.bot.conftest import COLLECTION, World, reply_of

pytestmark = pytest.mark.slow

BRIDGE_QUESTION = "Who led the bridge repair?"
BRIDGE_ANSWER = "The repair was led by Dr. Samuel K. Achebe of Northline Engineering."


async def test_ask_quotes_the_answer_with_its_source(world: World) -> None:
    result = await world.member.slash(world.channel, "ask", question=BRIDGE_QUESTION)
    assert result.acknowledged and not result.ephemeral
    reply = reply_of(result)
    assert BRIDGE_ANSWER in reply.content
    assert "Harbor Bridge reopens after two-year repair" in reply.content
    assert "Riverside Courier" in reply.content and "September 8, 2025" in reply.content
    labels = [c["emoji"]["name"] for row in reply.components for c in row["components"]]
    assert labels == ["👍", "👎"]


async def test_ask_with_no_answer_says_so_and_quotes_nothing(world: World) -> None:
    result = await world.member.slash(
        world.channel, "ask", question="How many moons does Jupiter have?"
    )
    reply = reply_of(result)
    assert reply.content == ABSTAIN_REPLY
    assert not reply.components


async def test_vote_buttons_store_the_vote_with_question_and_answer(
    world: World, data_dir: Path
) -> None:
    from bot.votes import votes
    from store.db import Store

    result = await world.member.slash(world.channel, "ask", question=BRIDGE_QUESTION)
    reply = reply_of(result)
    clicked = await world.admin.click(reply.message, label=None, custom_id=_button(reply, "up"))
    assert clicked.ephemeral and "helpful" in clicked.response.content
    await world.member.click(reply.message, custom_id=_button(reply, "down"))
    store = Store(data_dir / "qabot.sqlite3", model="all-MiniLM-L6-v2", dim=384)
    recorded = {(v.user_id, v.vote) for v in votes(store)}
    assert recorded == {(str(world.admin.id), 1), (str(world.member.id), -1)}
    assert {v.question for v in votes(store)} == {BRIDGE_QUESTION}
    assert votes(store)[0].sentences[0] == BRIDGE_ANSWER
    store.close()


async def test_mention_is_answered_in_a_thread_and_follow_ups_need_no_mention(
    world: World,
) -> None:
    bot_user = world.env.bot.user
    assert bot_user is not None
    await world.member.send(world.channel, f"<@{bot_user.id}> {BRIDGE_QUESTION}")
    [thread] = world.channel.threads
    first = thread.last_message
    assert first is not None and BRIDGE_ANSWER in first.content
    await world.member.send(thread, "How many apple trees did the volunteers plant?")
    follow_up = thread.last_message
    assert follow_up is not None and follow_up.author.id == bot_user.id
    assert "40" in follow_up.content or "forty" in follow_up.content.lower()
    # A message in the channel that does not mention the bot is left alone.
    before = len(world.channel.history())
    await world.member.send(world.channel, "Nice weather for the bridge today")
    assert len(world.channel.history()) == before + 1 and not world.channel.threads[1:]


async def test_other_bots_are_ignored(world: World) -> None:
    other = world.guild.add_member(world.env.create_user("otherbot", bot=True))
    bot_user = world.env.bot.user
    assert bot_user is not None
    await other.send(world.channel, f"<@{bot_user.id}> {BRIDGE_QUESTION}")
    assert world.channel.threads == []
    assert world.channel.last_message is not None
    assert world.channel.last_message.author.id == other.id


@pytest.mark.bot_settings(DISCORD_CHANNELS="1")
async def test_mentions_outside_the_allowed_channels_are_ignored(world: World) -> None:
    bot_user = world.env.bot.user
    assert bot_user is not None
    await world.member.send(world.channel, f"<@{bot_user.id}> {BRIDGE_QUESTION}")
    assert world.channel.threads == []


async def test_ingest_is_refused_without_manage_server(world: World) -> None:
    assert "ingest" not in world.member.available_commands(world.channel)
    assert "forget" not in world.member.available_commands(world.channel)
    # Even where a server lets everyone see the command, the bot checks the permission.
    [ingest] = [c for c in await world.env.bot.tree.fetch_commands() if c.name == "ingest"]
    world.guild.set_command_permissions(ingest, {world.member: True})
    result = await world.member.slash(world.channel, "ingest", url="https://example.org/a")
    assert result.ephemeral
    assert "Manage Server" in result.response.content


async def test_ingest_an_attached_file_then_ask_about_it(world: World) -> None:
    text = (
        "Lighthouse keeper retires\n\n"
        "Marta Quill kept the Gull Point lighthouse burning for thirty-one years.\n\n"
        "She lit the lamp for the last time on Sunday evening."
    )
    ingest = await world.admin.slash(
        world.channel, "ingest", file=("lighthouse.txt", text.encode("utf-8"))
    )
    assert ingest.ephemeral
    summary = reply_of(ingest)
    assert "Lighthouse keeper retires" in summary.content
    asked = await world.member.slash(
        world.channel, "ask", question="How long did Marta Quill keep the lighthouse?"
    )
    assert "thirty-one years" in reply_of(asked).content
    sources = await world.member.slash(world.channel, "sources")
    assert sources.ephemeral and "Lighthouse keeper retires" in reply_of(sources).content


async def test_forget_removes_an_article_from_the_answers(world: World) -> None:
    forget = await world.admin.slash(
        world.channel, "forget", article="Harbor Bridge reopens after two-year repair"
    )
    assert forget.ephemeral and "Forgot" in reply_of(forget).content
    asked = await world.member.slash(world.channel, "ask", question=BRIDGE_QUESTION)
    assert BRIDGE_ANSWER not in reply_of(asked).content
    missing = await world.admin.slash(world.channel, "forget", article="no such article")
    assert missing.ephemeral and "/sources" in _text(missing)


@pytest.mark.bot_settings(QABOT_COOLDOWN_QUESTIONS=2, QABOT_COOLDOWN_SECONDS=30)
async def test_cooldown_says_when_to_retry(world: World) -> None:
    for _ in range(2):
        ok = await world.member.slash(world.channel, "ask", question=BRIDGE_QUESTION)
        assert BRIDGE_ANSWER in reply_of(ok).content
    limited = await world.member.slash(world.channel, "ask", question=BRIDGE_QUESTION)
    assert limited.ephemeral and "try again in 30 s" in limited.response.content
    other = await world.admin.slash(world.channel, "ask", question=BRIDGE_QUESTION)
    assert BRIDGE_ANSWER in reply_of(other).content  # per user, not per channel
    await world.env.advance_time(31)
    again = await world.member.slash(world.channel, "ask", question=BRIDGE_QUESTION)
    assert BRIDGE_ANSWER in reply_of(again).content


async def test_quoted_text_pings_no_one(world: World, data_dir: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    victim = world.member
    text = (
        f"At the harbor meeting the chair told @everyone and @here, and <@{victim.id}> too, "
        "that the ferry timetable changes on Monday."
    )
    retriever = world.env.bot.service.retriever
    Ingestor(retriever.store, real_embedder).ingest(
        [RawArticle(key="memo", title="Ferry memo", text=text, pre_cleaned=True)],
        collection=COLLECTION,
    )
    result = await world.admin.slash(
        world.channel, "ask", question="When does the ferry timetable change?"
    )
    reply = reply_of(result)
    assert "@everyone" in reply.content and f"<@{victim.id}>" in reply.content
    stored = world.stored(reply)
    assert stored.ping_user_ids == [] and stored.ping_role_ids == []
    assert not stored.mention_everyone


async def test_a_very_long_answer_still_goes_through(world: World) -> None:
    result = await world.member.slash(
        world.channel, "ask", question="Which contractors does the ferry terminal report name?"
    )
    reply = reply_of(result)
    assert len(reply.content) <= MESSAGE_LIMIT
    assert "Ferry terminal report published" in reply.content  # its source is kept
    assert reply.content.count("contractor group") >= 1
    # Whole quotes only: every quote that opens also closes, ending a sentence.
    assert reply.content.count("“") == reply.content.count("”")
    assert all(q.split("“")[-1].endswith((".", "…")) for q in reply.content.split("”")[:-1])


async def test_answers_run_off_the_event_loop(make_bot) -> None:  # type: ignore[no-untyped-def]
    """Ten questions at once: the loop keeps ticking (heartbeats would keep flowing)."""
    bot = make_bot()
    service = bot.service
    await service.ask("warm up the indexes", COLLECTION)
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - started - 0.005)

    tick = asyncio.create_task(ticker())
    questions = [BRIDGE_QUESTION, "How many apple trees were planted?"] * 5
    started = time.perf_counter()
    answers = await asyncio.gather(*(service.ask(q, COLLECTION) for q in questions))
    elapsed = time.perf_counter() - started
    done.set()
    await tick
    assert all(not a.abstained for a in answers)
    assert len(lags) >= 5, f"the loop ticked {len(lags)} times in {elapsed:.2f} s"
    assert max(lags) < 0.1, f"the event loop stalled for {max(lags) * 1000:.0f} ms"


def _button(reply: Any, vote: str) -> str:
    for row in reply.components:
        for c in row["components"]:
            if c.get("custom_id", "").startswith(f"qabot:vote:{vote}:"):
                return str(c["custom_id"])
    raise AssertionError(f"no {vote} button in {reply.components}")


def _text(result: Any) -> str:
    parts = [result.response.content if result.response else ""]
    parts += [f.content for f in result.followups]
    return "\n".join(parts)


@pytest.mark.simcord(check_errors=False)
async def test_a_failing_command_is_answered_and_the_bot_carries_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    # Discord fails the request that posts the answer: the "thinking…" message turns into
    # an apology (a deferred reply's visibility is fixed when it is deferred).
    world.env.inject_error("POST", "/webhooks/*", status=500)
    failed = await world.member.slash(world.channel, "ask", question=BRIDGE_QUESTION)
    assert "went wrong" in _text(failed)
    assert "command /ask failed" in caplog.text
    again = await world.member.slash(world.channel, "ask", question=BRIDGE_QUESTION)
    assert BRIDGE_ANSWER in reply_of(again).content
