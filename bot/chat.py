"""`qabot chat`: a conversation in the terminal, each question read in the light of the ones
before it (retriever/conversation.py).

Answers print as `qabot ask` prints them. A running `qabot serve` answers when there is one
(the conversation so far goes with each question); otherwise the model is loaded here once.
`--resume NAME` keeps the conversation in the store as "chat:NAME" (bot/conversation_log.py)
and picks it up there next time.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from pathlib import Path
from typing import Any

from bot.commands import Command, arg
from bot.errors import BotError
from bot.settings import Settings

HISTORY_FILE = "chat_history"  # readline's line history, in the data folder
HELP = "Ask a question; /new starts a new conversation, /quit or Ctrl-D leaves."
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,100}")


class _Asker:
    """Asks a running `qabot serve`, or else a Retriever loaded here on the first question."""

    def __init__(self, settings: Settings, k: int, mode: str) -> None:
        self.settings = settings
        self.k = k
        self.mode = mode
        self._app: Any = None

    def ask(self, question: str, conversation: Any) -> Any:
        from bot.serve import ask_resident, socket_path

        if self._app is None:
            answer = ask_resident(
                socket_path(self.settings),
                question,
                k=self.k,
                mode=self.mode,
                collections=None,
                abstain=self.settings.abstain,
                history=[t.model_dump(mode="json") for t in conversation.turns],
            )
            if answer is not None:
                return answer
            from bot.app import App

            self._app = App(self.settings)
        return self._app.retriever.ask(question, k=self.k, mode=self.mode, history=conversation)

    def close(self) -> None:
        if self._app is not None:
            self._app.close()


def _line_editing(path: Path) -> Any:
    """readline's editing and history (kept in `path`) where the terminal has it."""
    try:
        import readline
    except ImportError:  # not on every platform; input() still works
        return None
    with contextlib.suppress(OSError):
        readline.read_history_file(path)
    readline.set_history_length(1000)
    return readline


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    """Talk with qabot: ask, then ask follow-ups ("what did he say next?").

    Each question is read in the light of the conversation so far; answers are quoted
    sentences with their sources. /new starts over, /quit or Ctrl-D leaves. With --resume
    NAME the conversation is kept in the store and goes on where it stopped next time.
    """
    from bot import conversation_log
    from bot.app import App
    from bot.terminal import render_answer
    from retriever.conversation import Conversation
    from retriever.errors import RetrieverError
    from store.errors import StoreError

    if not settings.has_store():
        raise BotError(
            f"no articles stored in {settings.data_dir}; add some with `qabot ingest FILES`"
        )
    name = args.resume
    if name is not None and not _NAME.fullmatch(name):
        raise BotError(
            f"--resume {name!r} is not a conversation name; use up to 100 letters, digits, "
            "'.', '_', '@' or '-'"
        )
    interactive = sys.stdin.isatty()
    history_path = settings.data_dir / HISTORY_FILE
    readline = _line_editing(history_path) if interactive else None
    asker = _Asker(settings, args.k or settings.answers, args.mode)
    conversation = Conversation()
    kept: conversation_log.Turns = ()
    keeper = App(settings) if name is not None else None  # opens the store only
    key = conversation_log.chat_key(name or "")
    if interactive:
        print(HELP)
    try:
        if keeper is not None:
            # As the Discord bot does: conversations untouched for QABOT_CONVERSATION_DAYS
            # are forgotten, this one included.
            conversation_log.prune(keeper.store, settings.conversation_days)
            kept = conversation_log.load(keeper.store, key) or ()
            conversation = conversation_log.as_conversation(kept) or Conversation()
            if kept:
                print(
                    f"(resuming {name}: {len(kept)} earlier turn{'s' if len(kept) != 1 else ''}, "
                    f"the last {kept[-1].question!r})"
                )
            else:
                print(f"(a new conversation, kept as {name})")
        while True:
            try:
                line = input("you> " if interactive else "")
            except EOFError:
                if interactive:
                    print()
                break
            question = line.strip()
            if not question:
                continue
            if question in ("/quit", "/exit"):
                break
            if question in ("/new", "/reset"):
                conversation, kept = Conversation(), ()
                if keeper is not None:
                    conversation_log.save(keeper.store, [key], kept)
                print("(a new conversation)")
                continue
            if question.startswith("/"):
                print(f"Unknown command {question.split()[0]}; {HELP}")
                continue
            try:
                answer = asker.ask(question, conversation)
            except (BotError, RetrieverError, StoreError) as exc:
                print(f"Error: {exc}")
                continue
            conversation = conversation.then(answer)
            if keeper is not None:
                kept = conversation_log.then(kept, answer)
                conversation_log.save(keeper.store, [key], kept)
            if answer.understood:
                print(f"(read as: {answer.understood})")
            print(render_answer(answer))
            print()
            sys.stdout.flush()
    except KeyboardInterrupt:
        print()
    finally:
        asker.close()
        if keeper is not None:
            keeper.close()
        if readline is not None:
            with contextlib.suppress(OSError):
                readline.write_history_file(history_path)
    return 0


COMMANDS = [
    Command(
        "chat",
        cmd_chat,
        [
            arg("-k", type=int, default=None, help="how many sentences to quote (default 3)"),
            arg(
                "--mode",
                choices=["hybrid", "dense", "bm25"],
                default="hybrid",
                help="retrieval mode (default hybrid)",
            ),
            arg(
                "--resume",
                metavar="NAME",
                default=None,
                help="keep this conversation in the store as NAME, and go on with it if kept",
            ),
        ],
    )
]
