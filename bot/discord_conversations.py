"""Conversations on Discord: which earlier turns a message follows.

In a thread the bot opened, a message follows the thread's earlier turns; a Discord reply to
one of the bot's answers follows that answer, in a channel too. The conversations are kept
in memory, by thread and by answer message. After a restart (or once dropped from memory)
they are read back from Discord itself: the earlier questions, in order, asked again
(`Retriever.resume`), so a conversation needs no table of its own and is what the members
see in the thread.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable

from retriever.conversation import Conversation

# Turns a conversation keeps: the folding fades older ones anyway, and a restart asks this
# many questions again at most.
MAX_TURNS = 6
# Conversations kept in memory (a thread's and each answer's); the least recently used go.
KEEP = 4096

_MENTION = re.compile(r"<@!?\d+>")


def question_of(content: str, limit: int) -> str:
    """A message's text as a question: mentions out, whitespace collapsed, cut to `limit`."""
    return " ".join(_MENTION.sub(" ", content).split())[:limit]


def recent(conversation: Conversation) -> Conversation:
    """The conversation's last `MAX_TURNS` turns."""
    if len(conversation.turns) <= MAX_TURNS:
        return conversation
    return Conversation(turns=conversation.turns[-MAX_TURNS:])


class Conversations:
    """The conversations the bot is in, by Discord id (a thread's, or an answer message's:
    the conversation up to and including that answer). Thread-safe."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._by_id: OrderedDict[int, Conversation] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: int) -> Conversation | None:
        with self._lock:
            found = self._by_id.get(key)
            if found is not None:
                self._by_id.move_to_end(key)
            return found

    def remember(self, keys: Iterable[int], conversation: Conversation) -> None:
        kept = recent(conversation)
        with self._lock:
            for key in keys:
                self._by_id[key] = kept
                self._by_id.move_to_end(key)
            while len(self._by_id) > self.keep:
                self._by_id.popitem(last=False)

    def forget_all(self) -> None:
        """Drop every conversation from memory (they are read back from Discord when next
        needed), as a restart does."""
        with self._lock:
            self._by_id.clear()

    def __len__(self) -> int:
        return len(self._by_id)
