"""One process of a qabot bot run as two discord.py shards, for test_discord_shards.py.

`python -m tests.bot.shard_process` builds the bot as `qabot discord` does (`App` from the
environment: QABOT_DATABASE_URL, QABOT_DATA_DIR, QABOT_DISCORD_SHARD, DISCORD_COLLECTIONS)
and runs it against a simulated Discord held in this process (simcord: its Discord lives in
the bot's event loop, so each bot process has one of its own). Both processes' Discords hold
the same two servers, one on each shard; each bot receives only its own shard's server. The
test drives it with one JSON request a line on stdin and reads one JSON reply a line on
stdout: {"ready": ...} first, then {"reply": text, "buttons": n} or {"error": text} for each
request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import discord
import simcord

from bot.app import App
from bot.discord_app import create_bot
from bot.settings import Settings

# A server on each of the two shards: discord.py's shard of a guild is (id >> 22) % 2.
GUILDS = {0: 1_113_377_215_119_376_384, 1: 1_113_377_215_123_570_688}
assert all((guild >> 22) % 2 == shard for shard, guild in GUILDS.items())


def _say(**reply: Any) -> None:
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


def _buttons(message: Any) -> int:
    """How many buttons a message the bot sent carries (the votes under an answer)."""
    rows = message.components  # simcord's payloads for a reply, discord.py's for a message
    return sum(
        len(row["components"]) if isinstance(row, dict) else len(row.children) for row in rows
    )


async def _serve(env: simcord.Env, bot: discord.Client) -> None:
    places: dict[int, tuple[Any, Any, Any]] = {}
    for shard, guild_id in GUILDS.items():
        guild = env.create_guild(f"Readers {shard}", id=guild_id)
        channel = guild.create_text_channel("general")
        admins = guild.create_role("Admins", permissions=discord.Permissions(manage_guild=True))
        admin = guild.add_member(env.create_user(f"ada{shard}"), roles=[admins])
        member = guild.add_member(env.create_user(f"ben{shard}"))
        places[guild_id] = (channel, admin, member)
    _say(ready=True, guilds=sorted(g.id for g in bot.guilds))
    while line := await asyncio.to_thread(sys.stdin.readline):
        request = json.loads(line)
        channel, admin, member = places[request["guild"]]
        try:
            if request["do"] == "ingest":
                path = Path(request["file"])
                result = await admin.slash(channel, "ingest", file=(path.name, path.read_bytes()))
            elif request["do"] == "ask":
                result = await member.slash(channel, "ask", question=request["question"])
            elif request["do"] == "mention":
                assert bot.user is not None
                await member.send(channel, f"<@{bot.user.id}> {request['question']}")
                said = channel.threads[-1].last_message
                _say(reply=said.content, buttons=_buttons(said))
                continue
            else:
                raise ValueError(f"unknown request {request['do']!r}")
        except Exception as exc:  # said to the test, which fails with it
            _say(error=f"{type(exc).__name__}: {exc}")
            continue
        said = result.followups[-1] if result.followups else result.response
        _say(reply=said.content, buttons=_buttons(said))


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    app = App(settings)
    retriever = app.retriever
    retriever.embedder.encode_query(["warm up"])  # as run_bot does: the model loads now
    bot = create_bot(retriever, settings)
    try:
        # Answers and ingests with the real model take longer than simcord's 5 s default.
        async with simcord.run(bot, settle_timeout=600) as env:
            await _serve(env, bot)
    finally:
        app.close()


if __name__ == "__main__":
    asyncio.run(main())
