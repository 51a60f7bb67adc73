"""The Discord bot: `/ask`, mentions answered in threads, vote buttons, article management.

Build it with `create_bot(retriever, settings)`; `run_bot(settings, token)` is what
`qabot discord` calls. Nothing here blocks the event loop: questions are answered on a
worker thread (`Service.ask`), and every write (ingest, forget, votes, feed sync) runs on a
second worker thread with its own SQLite connection, so a long ingest never holds up
answers and heartbeats keep flowing.

The slash commands are cogs, one feature each, loaded in `QABot.setup_hook`: `AskCog`
(`/ask`) and `LibraryCog` (`/sources`, `/ingest`, `/forget`). They stay thin: check the
input, call the bot's helper or `Service`, reply.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands, tasks

from bot import conversation_log
from bot.app import writer_for
from bot.conversation_log import Turns, message_key, thread_key
from bot.discord_conversations import MAX_TURNS, Conversations, question_of
from bot.discord_format import (
    ABSTAIN_REPLY,
    BACKEND_DOWN_REPLY,
    MESSAGE_LIMIT,
    format_answer,
    format_forgotten,
    format_ingest,
    format_sources,
    plain,
)
from bot.errors import BotError
from bot.settings import Settings
from retriever.conversation import Conversation, Turn
from retriever.models import Answer
from retriever.retriever import Retriever
from store.db import Store
from store.errors import BackendUnavailableError, NotFoundError, SkipSource, StoreError
from store.ingest import Ingestor, IngestReport
from store.models import ArticleInfo, RawArticle

log = logging.getLogger(__name__)

T = TypeVar("T")

NO_PINGS = discord.AllowedMentions.none()
MAX_QUESTION = 300
MAX_ATTACHMENT_BYTES = 5_000_000
# The permissions a mention needs, by the names a server's settings show.
PERMISSION_NAMES = {
    "create_public_threads": "Create Public Threads",
    "send_messages_in_threads": "Send Messages in Threads",
    "read_message_history": "Read Message History",
    "send_messages": "Send Messages",
}
_THREAD_NEEDS = ("create_public_threads", "send_messages_in_threads", "read_message_history")


@dataclass(frozen=True)
class Route:
    """Where a mention is answered: in a new thread from it, or in `channel` with a note
    naming the permissions that kept it from the usual place; nowhere if `channel` is None
    and no thread can be made."""

    thread: bool = False
    channel: discord.abc.Messageable | None = None
    reply_to: discord.Message | None = None
    missing: tuple[str, ...] = ()

    @property
    def nowhere(self) -> bool:
        return not self.thread and self.channel is None

    def note(self) -> str:
        if not self.missing or self.nowhere:
            return ""
        names = " and ".join(PERMISSION_NAMES.get(p, p) for p in self.missing)
        return f"-# Answering here: I'd answer in a thread, but I'm missing {names} here."


def route_for(message: discord.Message, me: discord.Member, in_our_thread: bool) -> Route:
    """Where the bot can answer `message`, from its permissions in the channel (a server
    may not grant what a thread needs; simcord's tests take them away)."""
    channel = message.channel
    if in_our_thread:
        assert isinstance(channel, discord.Thread)
        if channel.permissions_for(me).send_messages_in_threads:
            return Route(channel=channel)
        parent = channel.parent
        missing: tuple[str, ...] = ("send_messages_in_threads",)
        if parent is not None and parent.permissions_for(me).send_messages:
            return Route(channel=parent, missing=missing)  # type: ignore[arg-type]
        return Route(missing=(*missing, "send_messages"))
    assert isinstance(channel, discord.abc.GuildChannel)
    perms = channel.permissions_for(me)
    missing = tuple(p for p in _THREAD_NEEDS if not getattr(perms, p))
    if not missing:
        return Route(thread=True)
    if perms.send_messages:
        reply_to = message if perms.read_message_history else None
        return Route(channel=message.channel, reply_to=reply_to, missing=missing)
    return Route(missing=(*missing, "send_messages"))


class Cooldown:
    """At most `limit` questions per `per` seconds for each user (a sliding window)."""

    def __init__(self, limit: int, per: float) -> None:
        self.limit = limit
        self.per = per
        self._asked: dict[int, deque[float]] = {}

    def retry_after(self, user_id: int) -> float:
        """0 when the user may ask now (and counts the question); else seconds to wait."""
        now = time.monotonic()
        times = self._asked.setdefault(user_id, deque())
        while times and now - times[0] >= self.per:
            times.popleft()
        if len(times) >= self.limit:
            return self.per - (now - times[0])
        times.append(now)
        return 0.0


class Service:
    """The store and retriever behind the bot, reached only through worker threads.

    Reads (questions, listings) share the retriever's connection on one thread; writes use
    a second connection to the same file on another thread. SQLite's WAL mode lets a
    question read the last committed state while an ingest is being written.
    """

    def __init__(self, retriever: Retriever, *, answers: int = 3) -> None:
        self.retriever = retriever
        self.answers = answers
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qabot-ask")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qabot-write")
        self._write_store: Store | None = None
        self._ingestor: Ingestor | None = None

    async def _on(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, fn, *args)

    # -- reads ----------------------------------------------------------------------------

    async def ask(
        self, question: str, collection: str, history: Conversation | None = None
    ) -> Answer:
        return await self._on(self._reader, self._ask, question, collection, history)

    def _ask(self, question: str, collection: str, history: Conversation | None = None) -> Answer:
        return self.retriever.ask(
            question, k=self.answers, collections=[collection], history=history
        )

    async def resume(self, questions: list[str], collection: str) -> Conversation:
        """The conversation these earlier questions make, each asked again in order (after
        a restart, from what Discord shows)."""
        items: list[str | Turn] = list(questions)
        return await self._on(
            self._reader,
            lambda: self.retriever.resume(items, k=self.answers, collections=[collection]),
        )

    async def conversation(self, key: str) -> Turns | None:
        """The turns the store keeps under `key` (None: none, or the store cannot say)."""
        return await self._on(
            self._reader, lambda: conversation_log.load(self.retriever.store, key)
        )

    async def articles(self, collection: str) -> list[ArticleInfo]:
        return await self._on(
            self._reader, lambda: self.retriever.store.articles(collection=collection)
        )

    # -- writes ---------------------------------------------------------------------------

    def _writes(self) -> tuple[Store, Ingestor]:
        """The writer's own connection and ingestor, made on the writer thread."""
        if self._write_store is None or self._ingestor is None:
            self._write_store, self._ingestor = writer_for(self.retriever)
        return self._write_store, self._ingestor

    async def ingest(self, items: Callable[[], Any], collection: str) -> IngestReport:
        def run() -> IngestReport:
            _, ingestor = self._writes()
            return ingestor.ingest(items(), collection=collection)

        return await self._on(self._writer, run)

    async def forget(self, ref: str, collection: str) -> list[ArticleInfo]:
        return await self._on(self._writer, lambda: self._writes()[0].forget(ref, collection))

    async def record_answer(self, answer: Answer, guild_id: int | None) -> int:
        from bot.votes import record_answer

        return await self._on(
            self._writer,
            lambda: record_answer(
                self._writes()[0],
                answer.question,
                [a.text for a in answer.answers],
                [a.article.id for a in answer.answers],
                guild_id,
            ),
        )

    async def keep_conversation(self, keys: list[str], turns: Turns) -> None:
        """Keep the conversation under `keys` in the store; a store that refuses is logged,
        never raised (bot/conversation_log.py)."""
        await self._on(self._writer, lambda: self._with_writes(conversation_log.save, keys, turns))

    async def prune_conversations(self, days: float) -> int:
        return await self._on(
            self._writer, lambda: self._with_writes(conversation_log.prune, days) or 0
        )

    def _with_writes(self, fn: Callable[..., T], *args: Any) -> T | None:
        """`fn(store, *args)` on the writer's connection; None, logged, when it cannot be
        opened (the database away)."""
        try:
            store = self._writes()[0]
        except Exception as exc:
            log.warning("could not open the store for conversations: %s", exc)
            return None
        return fn(store, *args)

    async def record_vote(self, answer_id: int, user_id: int, vote: int) -> None:
        from bot.votes import record_vote

        await self._on(
            self._writer, lambda: record_vote(self._writes()[0], answer_id, user_id, vote)
        )

    async def sync_feeds(self) -> Any:
        """Sync subscribed feeds (store/feeds.py) on the writer thread."""
        from store.feeds import sync_feeds

        def run() -> Any:
            store, ingestor = self._writes()
            return sync_feeds(store, ingestor)  # each feed's own --allow-private

        return await self._on(self._writer, run)

    def close(self) -> None:
        self._reader.shutdown(wait=False, cancel_futures=True)
        self._writer.shutdown(wait=True, cancel_futures=True)
        if self._write_store is not None:
            self._write_store.close()


class VoteButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"qabot:vote:(?P<vote>up|down):(?P<answer>\d+)",
):  # type: ignore[call-arg]
    """👍 / 👎 under an answer. The answer's id is in the button, so it works after a restart."""

    def __init__(self, vote: str, answer_id: int) -> None:
        self.vote = vote
        self.answer_id = answer_id
        super().__init__(
            discord.ui.Button(
                style=discord.ButtonStyle.secondary,
                emoji="👍" if vote == "up" else "👎",
                custom_id=f"qabot:vote:{vote}:{answer_id}",
            )
        )

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> VoteButton:
        return cls(match["vote"], int(match["answer"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        bot = interaction.client
        assert isinstance(bot, QABot)
        vote = 1 if self.vote == "up" else -1
        await bot.service.record_vote(self.answer_id, interaction.user.id, vote)
        thanks = "Thanks! Marked as helpful." if vote > 0 else "Thanks; noted as not helpful."
        await interaction.response.send_message(thanks, ephemeral=True)


def vote_view(answer_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(VoteButton("up", answer_id))
    view.add_item(VoteButton("down", answer_id))
    return view


class QABot(commands.Bot):
    """qabot on Discord. Use `create_bot` to build one."""

    def __init__(self, service: Service, settings: Settings) -> None:
        # qabot never joins voice: no warnings about voice libraries it does not need.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        intents = discord.Intents.default()
        intents.message_content = True  # to read questions in mentions and threads
        shards = settings.discord_shards
        options: dict[str, Any] = {}
        if shards is not None:  # a ShardedQABot: these shards of the bot, in this process
            options = {"shard_ids": shards[0], "shard_count": shards[1]}
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=NO_PINGS,
            help_command=None,
            **options,
        )
        self.service = service
        self.settings = settings
        self.cooldown = Cooldown(settings.cooldown_questions, settings.cooldown_seconds)
        self._feed_loop: tasks.Loop[Any] | None = None
        self._prune_loop: tasks.Loop[Any] | None = None
        self._warned: set[tuple[int, tuple[str, ...]]] = set()
        self.conversations = Conversations()

    # -- start-up -------------------------------------------------------------------------

    async def setup_hook(self) -> None:
        self.add_dynamic_items(VoteButton)
        self.tree.on_error = self.on_app_command_error
        for cog in (AskCog(self), LibraryCog(self)):  # their slash commands join the tree
            await self.add_cog(cog)
        if self.settings.discord_guild_id:
            guild = discord.Object(id=self.settings.discord_guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
            log.info("synced %d commands to guild %s", len(synced), guild.id)
        else:
            synced = await self.tree.sync()
            log.info("synced %d commands globally (may take up to an hour to show)", len(synced))
        shards = self.settings.discord_shards
        # Feeds are the store's, not a server's: one process of a sharded bot syncs them.
        if self.settings.feed_sync_minutes > 0 and (shards is None or 0 in shards[0]):
            self._feed_loop = tasks.loop(minutes=self.settings.feed_sync_minutes)(self._sync_feeds)
            self._feed_loop.start()
        if self.settings.conversation_days > 0:
            self._prune_loop = tasks.loop(hours=24)(self._prune_conversations)
            self._prune_loop.start()

    async def _prune_conversations(self) -> None:
        """Forget conversations untouched for QABOT_CONVERSATION_DAYS (at start, then daily)."""
        await self.service.prune_conversations(self.settings.conversation_days)

    async def _sync_feeds(self) -> None:
        try:
            report = await self.service.sync_feeds()
        except ImportError:
            log.info("feed sync skipped: this qabot has no feed support")
            return
        except Exception:
            log.exception("feed sync failed; will retry next time")
            return
        log.info("feed sync: %s", report.summary())

    async def close(self) -> None:
        if self._feed_loop is not None:
            self._feed_loop.cancel()
        if self._prune_loop is not None:
            self._prune_loop.cancel()
        await super().close()
        self.service.close()

    # -- helpers --------------------------------------------------------------------------

    def collection_for(self, guild_id: int | None) -> str:
        """The collection a server asks: shared when the settings say so, else its own."""
        if guild_id is None:
            return self.settings.collection
        return self.settings.discord_collections.get(str(guild_id), f"guild-{guild_id}")

    async def answer(
        self,
        question: str,
        guild_id: int | None,
        *,
        note: str = "",
        history: Conversation | None = None,
    ) -> tuple[str, discord.ui.View | None, Answer]:
        """The reply to a question (after the turns of `history`, if any): text (ending
        with `note`, if any), for a real answer the vote buttons, and the answer."""
        answer = await self.service.ask(question, self.collection_for(guild_id), history)
        if note:
            text = f"{format_answer(answer, limit=MESSAGE_LIMIT - len(note) - 2)}\n\n{note}"
        else:
            text = format_answer(answer)
        if answer.abstained:
            return text, None, answer
        try:
            answer_id = await self.service.record_answer(answer, guild_id)
        except Exception as exc:  # a store that is read-only or away: the answer still goes
            # (the retriever answers from the indexes it holds while the database is away;
            # only the record a vote needs cannot be written)
            log.warning("answer shown without vote buttons: the store did not keep it (%s)", exc)
            return text, None, answer
        return text, vote_view(answer_id), answer

    def cooldown_message(self, retry: float) -> str:
        return f"You're asking quickly; try again in {max(1, round(retry))} s."

    # -- mentions and threads -------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or self.user is None or message.guild is None:
            return
        channel = message.channel
        in_our_thread = isinstance(channel, discord.Thread) and channel.owner_id == self.user.id
        mentioned = self.user in message.mentions
        replied = _replied_answer(message, self.user.id)
        if not in_our_thread and not mentioned and replied is None:
            return
        if not in_our_thread:
            allowed = self.settings.discord_channels
            if allowed and channel.id not in allowed:
                return
        question = question_of(message.content, MAX_QUESTION)
        if not question:
            return
        try:
            if replied is not None and not in_our_thread:
                route = _reply_route(message, message.guild.me)
            else:
                route = route_for(message, message.guild.me, in_our_thread)
        except discord.ClientException:  # a thread whose channel is not cached: try it
            route = Route(channel=channel)
        if route.nowhere:
            self._cannot_answer(channel, route.missing)
            return
        try:
            await self._answer_message(message, question, route, replied)
        except discord.Forbidden as exc:  # the permissions changed after they were read
            self._cannot_answer(channel, (f"a permission ({exc.text})",))
        except Exception:
            log.exception("answering a message failed")
            try:
                await (route.channel or channel).send(
                    "Something went wrong answering that; it's logged. Please try again.",
                    allowed_mentions=NO_PINGS,
                )
            except discord.HTTPException as exc:
                log.warning("could not say so in #%s either: %s", channel, exc)

    def _cannot_answer(self, channel: Any, missing: tuple[str, ...]) -> None:
        """Log, once a channel and a cause, that a mention there goes unanswered."""
        key = (channel.id, missing)
        if key in self._warned:
            return
        self._warned.add(key)
        names = ", ".join(PERMISSION_NAMES.get(p, p) for p in missing)
        log.warning(
            "cannot answer mentions in #%s (%s): the bot is missing %s there; grant it in "
            "the channel's or the bot role's permissions",
            channel,
            channel.id,
            names,
        )

    async def _answer_message(
        self,
        message: discord.Message,
        question: str,
        route: Route,
        replied: discord.Message | None = None,
    ) -> None:
        retry = self.cooldown.retry_after(message.author.id)
        if retry:
            if route.thread:  # said in the channel if the bot may post there, else a thread
                me = message.guild.me if message.guild else None
                channel = message.channel
                if me is not None and channel.permissions_for(me).send_messages:  # type: ignore[union-attr]
                    route = Route(channel=channel, reply_to=message)
                else:
                    route = Route(channel=await message.create_thread(name=_thread_name(question)))
            await _post(route, self.cooldown_message(retry), None)
            return
        thread = message.channel if isinstance(message.channel, discord.Thread) else None
        if route.thread:
            thread = await message.create_thread(name=_thread_name(question))
            route = Route(channel=thread)
        assert route.channel is not None
        answer: Answer | None = None
        async with route.channel.typing():
            guild_id = message.guild.id if message.guild else None
            history: Turns | None = None
            read_back: str | None = None
            try:
                history, read_back = await self._history(message, replied, guild_id)
                text, view, answer = await self.answer(
                    question,
                    guild_id,
                    note=route.note(),
                    history=conversation_log.as_conversation(history),
                )
            except BackendUnavailableError as exc:  # said where the answer would have gone
                log.error("cannot answer a mention in #%s: %s", message.channel, exc)
                text, view = BACKEND_DOWN_REPLY, None
        posted = await _post(route, text, view)
        if answer is not None:
            # The conversation up to this answer: a reply to it, or the thread's next
            # message, follows on from here.
            keys = [message_key(posted.id)] + ([thread_key(thread.id)] if thread else [])
            turns = conversation_log.then(history, answer)
            self.conversations.remember(keys, turns)
            await self.service.keep_conversation(keys, turns)
            if read_back is not None and read_back not in keys and history:
                # Read back from Discord for an earlier answer: kept now, not asked again.
                await self.service.keep_conversation([read_back], history)

    async def _history(
        self, message: discord.Message, replied: discord.Message | None, guild_id: int | None
    ) -> tuple[Turns | None, str | None]:
        """The turns `message` follows: those up to the answer it replies to, or the
        thread's (a thread of ours); None for a question that opens a conversation. Held in
        memory, kept in the store; one the store lacks (from before it kept them) is read
        back from Discord and its questions asked again, and its key comes second (for the
        caller to keep it, once answered: no write holds up the answer)."""
        channel = message.channel
        if replied is not None:
            key = message_key(replied.id)
        elif isinstance(channel, discord.Thread):
            key = thread_key(channel.id)
        else:
            return None, None
        found = self.conversations.get(key) or await self.service.conversation(key)
        if found is not None:
            self.conversations.remember([key], found)
            return found, None
        if replied is not None:
            questions = await _questions_before_answer(replied, self.user)
        else:
            assert isinstance(channel, discord.Thread)
            questions = await _thread_questions(channel, message)
        if not questions:
            return None, None
        log.info(
            "conversation %s is not in the store: asking its %d earlier questions again",
            key,
            len(questions),
        )
        resumed = await self.service.resume(questions, self.collection_for(guild_id))
        turns = conversation_log.stored(resumed, conversation_log.now())
        self.conversations.remember([key], turns)
        return turns, key

    # -- errors ---------------------------------------------------------------------------

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        if isinstance(error, app_commands.MissingPermissions):
            text = "You need the Manage Server permission for that."
        elif isinstance(error, app_commands.NoPrivateMessage):
            text = "That works in a server, not in direct messages."
        else:
            original = getattr(error, "original", error)
            if isinstance(original, BackendUnavailableError):
                name = interaction.command.name if interaction.command else "?"
                log.error("command /%s failed: %s", name, original)
                text = BACKEND_DOWN_REPLY
            elif isinstance(original, StoreError):
                text = f"Error: {plain(str(original), 1800)}"
            else:
                log.error(
                    "command /%s failed",
                    interaction.command.name if interaction.command else "?",
                    exc_info=original,
                )
                text = "Something went wrong; it's logged. Please try again."
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_PINGS)
        else:
            await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_PINGS)


async def _post(route: Route, text: str, view: discord.ui.View | None) -> discord.Message:
    """`text` where `route` says: as a reply when it has one, no pings, no preview cards."""
    kwargs: dict[str, Any] = {"allowed_mentions": NO_PINGS, "suppress_embeds": True}
    if view is not None:
        kwargs["view"] = view
    if route.reply_to is not None:
        return await route.reply_to.reply(text, mention_author=False, **kwargs)
    assert route.channel is not None
    return await route.channel.send(text, **kwargs)


def _replied_answer(message: discord.Message, me: int) -> discord.Message | None:
    """The bot's own message that `message` replies to (Discord's reply), if it does."""
    ref = message.reference
    target = ref.resolved if ref is not None else None
    if isinstance(target, discord.Message) and target.author.id == me:
        return target
    return None


def _reply_route(message: discord.Message, me: discord.Member) -> Route:
    """A reply to one of the bot's answers in a channel is answered there, in reply."""
    channel = message.channel
    assert isinstance(channel, discord.abc.GuildChannel)
    perms = channel.permissions_for(me)
    if not perms.send_messages:
        return Route(missing=("send_messages",))
    return Route(channel=message.channel, reply_to=message if perms.read_message_history else None)


async def _thread_questions(thread: discord.Thread, before: discord.Message) -> list[str]:
    """The questions asked in a thread of ours before `before`, oldest first: the message
    the thread was opened from, then what members wrote in it (the last `MAX_TURNS`)."""
    asked: list[str] = []
    async for m in thread.history(limit=4 * MAX_TURNS, before=before):
        if not m.author.bot:
            asked.append(question_of(m.content, MAX_QUESTION))
    asked.reverse()
    starter = thread.starter_message
    if starter is None and thread.parent is not None:
        try:  # a thread opened from a message has that message's id
            starter = await thread.parent.fetch_message(thread.id)  # type: ignore[union-attr]
        except discord.HTTPException:
            starter = None
    if starter is not None and not starter.author.bot:
        asked.insert(0, question_of(starter.content, MAX_QUESTION))
    return [q for q in asked if q][-MAX_TURNS:]


async def _questions_before_answer(
    answer: discord.Message, me: discord.ClientUser | None
) -> list[str]:
    """The questions up to one of the bot's answers, oldest first: in a thread of ours
    the thread's before it; in a channel the chain of replies it answered (each answer
    was posted in reply to its question, which may itself reply to an earlier answer)."""
    channel = answer.channel
    if isinstance(channel, discord.Thread) and me is not None and channel.owner_id == me.id:
        return await _thread_questions(channel, answer)
    asked: list[str] = []
    current: discord.Message | None = answer
    while current is not None and len(asked) < MAX_TURNS:
        ref = current.reference
        target = ref.resolved if ref is not None else None
        if target is None and ref is not None and ref.message_id is not None:
            try:
                target = await current.channel.fetch_message(ref.message_id)
            except discord.HTTPException:
                target = None
        if not isinstance(target, discord.Message):
            break
        if not target.author.bot:
            asked.append(question_of(target.content, MAX_QUESTION))
        current = target
    return [q for q in reversed(asked) if q]


def _thread_name(question: str) -> str:
    name = question.strip() or "Question"
    return name if len(name) <= 90 else name[:89].rsplit(" ", 1)[0] + "…"


class AskCog(commands.Cog):
    """`/ask`: a question answered in the channel, with vote buttons under a real answer.
    (Mentions and threads are answered by `QABot.on_message`, which must replace the
    prefix-command handling a listener here would run beside.)"""

    def __init__(self, bot: QABot) -> None:
        self.bot = bot

    @app_commands.command(name="ask", description="Ask the articles a question")
    @app_commands.describe(question="What you want to know")
    @app_commands.guild_only()
    async def ask(
        self, interaction: discord.Interaction, question: app_commands.Range[str, 1, MAX_QUESTION]
    ) -> None:
        retry = self.bot.cooldown.retry_after(interaction.user.id)
        if retry:
            await interaction.response.send_message(
                self.bot.cooldown_message(retry), ephemeral=True, allowed_mentions=NO_PINGS
            )
            return
        await interaction.response.defer(thinking=True)
        text, view, answer = await self.bot.answer(question, interaction.guild_id)
        kwargs: dict[str, Any] = {"allowed_mentions": NO_PINGS, "suppress_embeds": True}
        if view is not None:
            kwargs["view"] = view
        sent = await interaction.followup.send(text, wait=True, **kwargs)
        # A Discord reply to this answer follows up on it, after a restart too: the store
        # keeps it (the question of a slash command is not in the channel to be read back).
        keys, turns = [message_key(sent.id)], conversation_log.then(None, answer)
        self.bot.conversations.remember(keys, turns)
        await self.bot.service.keep_conversation(keys, turns)


class LibraryCog(commands.Cog):
    """The server's articles: `/sources` lists them; `/ingest` and `/forget` (Manage Server
    only) add and remove them. Replies are ephemeral."""

    def __init__(self, bot: QABot) -> None:
        self.bot = bot

    @app_commands.command(name="sources", description="List the articles this server can ask about")
    @app_commands.describe(page="Page number (10 articles a page)")
    @app_commands.guild_only()
    async def sources(
        self, interaction: discord.Interaction, page: app_commands.Range[int, 1] = 1
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        articles = await self.bot.service.articles(self.bot.collection_for(interaction.guild_id))
        text, _pages = format_sources(articles, page=page)
        await interaction.followup.send(
            text, ephemeral=True, allowed_mentions=NO_PINGS, suppress_embeds=True
        )

    @app_commands.command(name="ingest", description="Add an article from a URL or attached files")
    @app_commands.describe(
        url="A web page or an RSS/Atom feed",
        file="A .txt, .md, .html, .json or .jsonl file",
    )
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def ingest(
        self,
        interaction: discord.Interaction,
        url: str | None = None,
        file: discord.Attachment | None = None,
    ) -> None:
        if not url and file is None:
            await interaction.response.send_message(
                "Give a `url` or attach a `file`.", ephemeral=True, allowed_mentions=NO_PINGS
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        items = await _gather(url, file)
        report = await self.bot.service.ingest(
            lambda: items, self.bot.collection_for(interaction.guild_id)
        )
        await interaction.followup.send(
            format_ingest(report), ephemeral=True, allowed_mentions=NO_PINGS, suppress_embeds=True
        )

    @app_commands.command(name="forget", description="Remove an article from this server's list")
    @app_commands.describe(article="The article's id (from /sources), URL or exact title")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.checks.has_permissions(manage_guild=True)
    async def forget(self, interaction: discord.Interaction, article: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        collection = self.bot.collection_for(interaction.guild_id)
        try:
            removed = await self.bot.service.forget(article, collection)
        except NotFoundError:
            await interaction.followup.send(
                f"No article here matches “{plain(article, 100)}”; `/sources` lists their ids "
                "and titles.",
                ephemeral=True,
                allowed_mentions=NO_PINGS,
            )
            return
        await interaction.followup.send(
            format_forgotten([a.title for a in removed]),
            ephemeral=True,
            allowed_mentions=NO_PINGS,
            suppress_embeds=True,
        )


async def _gather(
    url: str | None, file: discord.Attachment | None
) -> list[RawArticle | SkipSource]:
    """What `/ingest` was given: the attached file's articles, then the URL's."""
    items: list[RawArticle | SkipSource] = []
    if file is not None:
        items.extend(await _read_attachment(file))
    if url:
        items.extend(await asyncio.to_thread(_fetch_url, url))
    return items


async def _read_attachment(file: discord.Attachment) -> list[RawArticle | SkipSource]:
    """An attached file, read through the same loaders as `qabot ingest`."""
    from store.sources.files import load_file

    if file.size > MAX_ATTACHMENT_BYTES:
        return [SkipSource(file.filename, f"larger than {MAX_ATTACHMENT_BYTES // 1_000_000} MB")]
    data = await file.read()
    name = Path(file.filename).name or "attachment.txt"

    def load() -> list[RawArticle | SkipSource]:
        with tempfile.TemporaryDirectory(prefix="qabot-") as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            out = []
            for item in load_file(path):
                if isinstance(item, RawArticle):
                    item = item.model_copy(
                        update={
                            "key": f"discord:{name}" if item.key == str(path) else item.key,
                            "source": name,
                        }
                    )
                elif isinstance(item, SkipSource):
                    item = SkipSource(name, item.reason)
                out.append(item)
            return out

    return await asyncio.to_thread(load)


def _fetch_url(url: str) -> list[RawArticle | SkipSource]:
    """A page or feed from the web; private and local addresses are always refused here."""
    from store.sources.read import read_source

    try:
        return list(read_source(url, allow_private=False))
    except StoreError as exc:
        return [SkipSource(url, str(exc))]


class ShardedQABot(QABot, commands.AutoShardedBot):
    """qabot as some of the shards of a bot run as several processes (QABOT_DISCORD_SHARD):
    discord.py's AutoShardedBot on the shard ids named, each server's events reaching only
    the shard that owns it ((guild id >> 22) % shard count). The processes share the store
    (QABOT_DATABASE_URL), so an article one ingests is answered by all."""


def create_bot(retriever: Retriever, settings: Settings) -> QABot:
    """A qabot Discord bot answering from `retriever`'s store, configured by `settings`
    (a `ShardedQABot` when QABOT_DISCORD_SHARD names shards).

    The bot is not started; `await bot.start(token)` (or `run_bot`) connects it. Tests drive
    it offline with simcord; another program can run it on its own store the same way.
    """
    kind = QABot if settings.discord_shards is None else ShardedQABot
    return kind(Service(retriever, answers=settings.answers), settings)


def run_bot(settings: Settings, token: str) -> None:
    """Build the bot from the settings and run it until interrupted (`qabot discord`)."""
    from bot.app import App

    app = App(settings)
    retriever = app.retriever
    # The indexes before the first question: mapped now, read into memory behind it.
    retriever.keep_resident()
    retriever.embedder.encode_query(["warm up"])  # load the model now, not on the first question
    bot = create_bot(retriever, settings)
    log.info(
        "starting the Discord bot (data in %s, shards %s)",
        settings.data_dir,
        settings.discord_shard or "all",
    )
    try:
        bot.run(token, log_handler=None)
    except discord.LoginFailure as exc:
        raise BotError(
            "Discord refused DISCORD_TOKEN; copy the bot's token again from the developer "
            "portal (Bot -> Reset Token) into .env"
        ) from exc
    except (OSError, aiohttp.ClientError, discord.GatewayNotFound) as exc:
        raise BotError(
            f"could not reach Discord ({exc.__class__.__name__}: {exc}); check the network "
            "and try again"
        ) from exc
    except discord.PrivilegedIntentsRequired as exc:
        raise BotError(
            "the Message Content intent is off; switch it on in the developer portal "
            "(Bot -> Privileged Gateway Intents) and start again"
        ) from exc
    finally:
        app.close()


__all__ = [
    "ABSTAIN_REPLY",
    "AskCog",
    "LibraryCog",
    "QABot",
    "Service",
    "ShardedQABot",
    "create_bot",
    "run_bot",
]
