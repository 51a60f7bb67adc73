"""Conversations kept in the store, for every front end that has them: a Discord thread or
reply chain (bot/discord_app.py) and `qabot chat --resume NAME` (bot/chat.py).

The store keeps each conversation's last `MAX_TURNS` turns (`Store.put_conversation`) under
a key the front end chooses: "discord:thread:<id>", "discord:message:<id>" (the conversation
up to and including that answer, which a Discord reply to it follows), "chat:<name>". So a
restarted bot, or another process on the same database, follows a conversation on without
asking its earlier questions again. Keeping it is a help, never a condition of an answer: a
store that is read-only, locked or away is logged, and the answer goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from retriever.conversation import Conversation, Turn
from retriever.models import Answer
from store.models import StoredTurn
from store.seams import Store

log = logging.getLogger(__name__)

# Turns a conversation keeps: the folding looks back over three and fades each turn further
# back, and a conversation read back from Discord asks this many questions again at most.
MAX_TURNS = 6

Turns = tuple[StoredTurn, ...]


def now() -> str:
    """The time a turn is kept under (ISO 8601, UTC, to the second)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def thread_key(thread_id: int) -> str:
    return f"discord:thread:{thread_id}"


def message_key(message_id: int) -> str:
    return f"discord:message:{message_id}"


def chat_key(name: str) -> str:
    return f"chat:{name}"


def recent(turns: Sequence[StoredTurn]) -> Turns:
    """The last `MAX_TURNS` turns."""
    return tuple(turns[-MAX_TURNS:])


def then(turns: Sequence[StoredTurn] | None, answer: Answer) -> Turns:
    """The turns with the answer just given after them, asked now, kept short."""
    return recent((*(turns or ()), Turn.of(answer).stored(now())))


def as_conversation(turns: Sequence[StoredTurn] | None) -> Conversation | None:
    """What the retriever reads a question in the light of; None for no turns."""
    if not turns:
        return None
    return Conversation(turns=tuple(Turn.from_stored(t) for t in turns))


def stored(conversation: Conversation, asked_at: str) -> Turns:
    """A conversation's last turns as the store keeps them, all asked at `asked_at` (a
    conversation read back from Discord: its questions were asked again then)."""
    return recent([t.stored(asked_at) for t in conversation.turns])


def load(store: Store, key: str) -> Turns | None:
    """The turns the store keeps under `key`; None when it keeps none or cannot be read
    (logged: the caller goes on without them)."""
    try:
        turns = store.conversation(key)
    except Exception as exc:  # whatever the backend raises: an answer matters more
        log.warning("could not read conversation %s from the store: %s", key, _said(exc))
        return None
    return recent(turns) if turns else None


def save(store: Store, keys: Sequence[str], turns: Sequence[StoredTurn]) -> bool:
    """Keep the last `MAX_TURNS` of `turns` under each of `keys` (one small transaction,
    apart from any article's); whether it was kept. A store that refuses is logged and
    the conversation lives on in memory only."""
    try:
        store.put_conversation(keys, recent(turns))
    except Exception as exc:  # read-only, locked, away: logged, the answer goes on
        log.warning(
            "could not keep conversation %s in the store (%s); it lives in this process only",
            ", ".join(keys),
            _said(exc),
        )
        return False
    return True


def prune(store: Store, days: float) -> int:
    """Forget the conversations nobody has added to for `days` days; how many went (0 when
    `days` is 0: kept for ever, or when the store refuses, logged)."""
    if days <= 0:
        return 0
    before = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
    try:
        gone = store.prune_conversations(before)
    except Exception as exc:
        log.warning("could not prune old conversations: %s", _said(exc))
        return 0
    if gone:
        log.info("forgot %d conversations untouched for %g days", gone, days)
    return gone


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
