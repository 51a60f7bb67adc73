"""Article metadata written by someone else reaches Discord as text, never as markup.

A feed's owner picks its titles, URLs, dates and publishers, and a store written before
metadata was checked where it enters may hold anything. Each test stores such values,
asks through simcord as a member would, and parses what the member is shown.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.discord_format import ABSTAIN_REPLY, MESSAGE_LIMIT
from store.ingest import Ingestor
from store.models import RawArticle
from tests.bot.conftest import COLLECTION, World, reply_of
from tests.bot.rendering import assert_safe, render

pytestmark = pytest.mark.slow

LONG = "Harbor " + "very long title " * 160  # 2,500 characters

# (metadata, sentence, question): one article each.
HOSTILE: dict[str, tuple[dict[str, str], str, str]] = {
    "masked link as the date": (
        {"published": "[Official statement](https://evil.example/login)"},
        "The Marlow ferry carried 412 passengers on its first crossing.",
        "How many passengers did the Marlow ferry carry on its first crossing?",
    ),
    "url breaking out of <>": (
        {"url": ">) [Verify your account](https://evil.example/phish"},
        "The Eastbrook library lent 9,300 books during the winter festival.",
        "How many books did the Eastbrook library lend during the winter festival?",
    ),
    "heading after a newline in the date": (
        {"published": "3 October 2025\n# FREE NITRO CLICK BELOW"},
        "The Kestrel Valley orchard grew plums, pears and quinces last season.",
        "What fruit did the Kestrel Valley orchard grow last season?",
    ),
    "title that is a url": (
        {"title": "https://www.paypal.com/signin"},
        "The Oldmill bakery sold its famous rye loaf for four dollars.",
        "How much did the Oldmill bakery sell its rye loaf for?",
    ),
    "markup and mentions as the publisher": (
        {"publisher": "[Claim](https://evil.example/x) @everyone ||free||"},
        "The Greystone museum reopened its fossil gallery after the spring flood.",
        "Which gallery did the Greystone museum reopen after the flood?",
    ),
    "2,500-character title": (
        {"title": LONG},
        "The Stonebridge choir rehearsed every Thursday evening in the town hall.",
        "When did the Stonebridge choir rehearse?",
    ),
    "2,500-character url": (
        {"url": "https://news.example.org/" + "a" * 2500},
        "The Westfield marathon was won by Priya Natarajan in two hours and nine minutes.",
        "Who won the Westfield marathon?",
    ),
}


def _record(name: str) -> dict[str, str]:
    fields, sentence, _ = HOSTILE[name]
    slug = "".join(c if c.isalnum() else "-" for c in name)
    record = {
        "title": f"Town news: {name}",
        "url": f"https://news.example.org/{slug}",
        "publisher": "Town Crier",
        "published": "2025-10-03",
        "text": f"{sentence} Local volunteers helped on the day.",
    }
    record.update(fields)
    return record


def _assert_answered_safely(content: str, sentence: str) -> None:
    seen = assert_safe(content)
    assert sentence in seen.text
    cites = [line for line in content.splitlines() if line.startswith("— ")]
    assert cites and all(line.strip("— ") for line in cites)  # a source line, always


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_an_old_store_holding_hostile_metadata_is_shown_safely(
    world: World, real_embedder: Any, name: str
) -> None:
    # Stored as a store written before entry validation holds it (the model's own
    # checks, which now refuse some of these values, are bypassed on purpose).
    record = _record(name)
    text = record.pop("text")
    raw = RawArticle.model_construct(
        key=record["url"], text=text, pre_cleaned=True, source=None, guid=None,
        author=None, **record,
    )  # fmt: skip
    retriever = world.env.bot.service.retriever
    report = Ingestor(retriever.store, real_embedder).ingest([raw], collection=COLLECTION)
    assert report.added, report.skipped
    _, sentence, question = HOSTILE[name]

    asked = await world.member.slash(world.channel, "ask", question=question)
    _assert_answered_safely(reply_of(asked).content, sentence)
    assert "Town Crier" in reply_of(asked).content or "publisher" in name
    assert reply_of(asked).message.flags.suppress_embeds  # no preview card of any link

    listed = await world.member.slash(world.channel, "sources", page=1)
    listing = reply_of(listed).content
    assert_safe(listing)
    stored = retriever.store.articles(collection=COLLECTION)
    assert len([line for line in listing.splitlines() if line.startswith("`")]) == min(
        10, len(stored)
    )

    bot_user = world.env.bot.user
    assert bot_user is not None
    await world.member.send(world.channel, f"<@{bot_user.id}> {question}")
    [thread] = world.channel.threads
    assert thread.last_message is not None
    _assert_answered_safely(thread.last_message.content, sentence)


async def test_a_hostile_jsonl_through_ingest_never_reaches_discord_as_markup(
    world: World,
) -> None:
    lines = "\n".join(json.dumps(_record(name)) for name in HOSTILE)
    ingest = await world.admin.slash(
        world.channel, "ingest", file=("town.jsonl", lines.encode("utf-8"))
    )
    summary = reply_of(ingest).content
    assert_safe(summary)
    assert "Added" in summary or "Skipped" in summary

    listed = await world.member.slash(world.channel, "sources", page=1)
    assert_safe(reply_of(listed).content)
    listed_2 = await world.member.slash(world.channel, "sources", page=2)
    assert_safe(reply_of(listed_2).content)

    answered = 0
    for _, sentence, question in HOSTILE.values():
        asked = await world.member.slash(world.channel, "ask", question=question)
        content = reply_of(asked).content
        assert_safe(content)
        # Entry validation may refuse a record outright; whatever is stored is answered
        # with its source line.
        if content != ABSTAIN_REPLY and sentence in render(content).text:
            _assert_answered_safely(content, sentence)
            answered += 1
    assert answered >= 4, f"only {answered} of the {len(HOSTILE)} hostile articles answered"


async def test_forget_and_ingest_replies_show_titles_as_text(world: World) -> None:
    title = "[Verify your account](https://evil.example/phish) @everyone"
    record = {"title": title, "text": "The Quayside market opens at dawn on Saturdays."}
    ingest = await world.admin.slash(
        world.channel, "ingest", file=("market.jsonl", json.dumps(record).encode("utf-8"))
    )
    summary = reply_of(ingest).content
    assert_safe(summary)
    assert "@everyone" not in summary and "Verify your account" in render(summary).text

    forget = await world.admin.slash(world.channel, "forget", article=title)
    reply = reply_of(forget).content
    assert reply.startswith("Forgot") and len(reply) <= MESSAGE_LIMIT
    assert_safe(reply)
    missing = await world.admin.slash(world.channel, "forget", article=title)
    assert_safe(reply_of(missing).content)
