"""Conversations on Discord: which earlier turns a message follows.

In a thread the bot opened, a message follows the thread's earlier turns; a Discord reply to
one of the bot's answers follows that answer, in a channel too. The conversations are kept
in the store (bot/conversation_log.py: "discord:thread:<id>", "discord:message:<id>") and,
for the next message, in memory. After a restart the store has them; one it lacks (from
before it kept them, or written while it was away) is read back from Discord itself: the
earlier questions, in order, asked again (`Retriever.resume`).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable

from bot.conversation_log import MAX_TURNS, Turns, recent

__all__ = ["KEEP", "MAX_TURNS", "Conversations", "question_of"]

# Conversations kept in memory (a thread's and each answer's); the least recently used go.
KEEP = 4096

_MENTION = re.compile(r"<@!?\d+>")


def question_of(content: str, limit: int) -> str:
    """A message's text as a question: mentions out, whitespace collapsed, cut to `limit`."""
    return " ".join(_MENTION.sub(" ", content).split())[:limit]


class Conversations:
    """The conversations the bot is in, held in memory by their store keys (a thread's, or
    an answer message's: the conversation up to and including that answer). Thread-safe."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._by_key: OrderedDict[str, Turns] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Turns | None:
        with self._lock:
            found = self._by_key.get(key)
            if found is not None:
                self._by_key.move_to_end(key)
            return found

    def remember(self, keys: Iterable[str], turns: Turns) -> None:
        kept = recent(turns)
        with self._lock:
            for key in keys:
                self._by_key[key] = kept
                self._by_key.move_to_end(key)
            while len(self._by_key) > self.keep:
                self._by_key.popitem(last=False)

    def forget_all(self) -> None:
        """Drop every conversation from memory (the store, or Discord, has them when next
        needed), as a restart does."""
        with self._lock:
            self._by_key.clear()

    def __len__(self) -> int:
        return len(self._by_key)
