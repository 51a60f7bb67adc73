"""The frame of the `qabot` command line: a command is a name, a function and its arguments.

Each command module exposes its commands as a `COMMANDS` list of `Command`; `bot/cli.py`
puts the lists in one table and `run` parses argv against it. Help comes from each
function's docstring (first line: the summary in the command list; the whole: `--help`).
The global options (`--data-dir`, `-v`) are taken before or after any command, at any
depth. No command module imports `bot.cli`: they all import this module instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import BotError
from bot.settings import Settings, load_settings
from retriever.errors import RetrieverError
from store.errors import StoreError

Run = Callable[[argparse.Namespace, Settings], int | None]


@dataclass(frozen=True)
class Arg:
    """One `add_argument(*flags, **options)` call."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    """An argument of a command, as `argparse.ArgumentParser.add_argument` takes it."""
    return Arg(flags, options)


@dataclass(frozen=True)
class Command:
    """A command: `name`, the function it runs (its docstring is its help), its arguments,
    and its own subcommands (listed under `title`, shown as `metavar`).

    `keep_layout` shows the docstring's lines in `--help` as written instead of re-wrapped.
    """

    name: str
    run: Run
    args: Sequence[Arg] = ()
    subcommands: Sequence[Command] = ()
    title: str = "commands"
    metavar: str = "COMMAND"
    keep_layout: bool = False


def add_commands(subparsers: Any, commands: Sequence[Command]) -> None:
    """Add `commands` (and theirs, recursively) to an `add_subparsers()` object."""
    for command in commands:
        doc = _doc(command.run)
        options: dict[str, Any] = {"help": doc.splitlines()[0], "description": doc}
        if command.keep_layout:
            options["formatter_class"] = argparse.RawDescriptionHelpFormatter
        parser: argparse.ArgumentParser = subparsers.add_parser(command.name, **options)
        parser.set_defaults(run=command.run)
        for a in command.args:
            parser.add_argument(*a.flags, **a.options)
        if command.subcommands:
            sub = parser.add_subparsers(title=command.title, metavar=command.metavar)
            add_commands(sub, command.subcommands)


def _doc(func: Callable[..., Any]) -> str:
    """A function's docstring as help: dedented, so a kept layout shows no indent."""
    import inspect

    return inspect.cleandoc(func.__doc__ or "")


def _add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """`--data-dir` and `-v`, taken before the command or after it, at any depth.

    Below the top level the defaults are SUPPRESS, so a subcommand that is not given the
    option leaves the value parsed before the command (or the top level's default) alone.
    """
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default,
        metavar="DIR",
        help="where the store lives (default: $QABOT_DATA_DIR or the per-user "
        "data folder, ~/.local/share/qabot on Linux)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="log what happens",
    )


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: it takes the global options too, and so do its own
    subcommands (argparse builds them with the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _add_global_options(self, top=False)


def build_parser(commands: Sequence[Command]) -> argparse.ArgumentParser:
    """The `qabot` parser over a table of commands."""
    parser = argparse.ArgumentParser(
        prog="qabot",
        description="Answer questions with exact, cited sentences from your articles.",
    )
    _add_global_options(parser, top=True)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=CommandParser)
    add_commands(sub, commands)
    return parser


def run(argv: Sequence[str] | None, commands: Sequence[Command]) -> int:
    """Parse `argv` against `commands` and run the one named: its exit status, and an
    error from below as one line (`Error: ...`, status 1), never a traceback."""
    quiet_openmp()
    # The store, its indexes and the socket are the user's only; a program that calls
    # main() gets its own umask back when the command is done.
    previous = os.umask(0o077)
    try:
        return _run(build_parser(commands), argv)
    finally:
        os.umask(previous)


def _run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        settings = load_settings(data_dir=args.data_dir)
        logging.basicConfig(
            level=logging.DEBUG
            if args.verbose
            else getattr(logging, settings.log_level.upper(), logging.WARNING),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        return int(args.run(args, settings) or 0)
    except (BotError, StoreError, RetrieverError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted; every article finished before that is stored.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


def quiet_openmp() -> None:
    """Let the model's OpenMP threads sleep soon after an encode, unless the user says
    otherwise (GOMP_SPINCOUNT in the environment wins).

    libgomp's idle threads spin for a long while by default (300,000 rounds). On 2 cores
    the one left spinning after a question's encode took the core from the search that
    follows it: measured on a 10k-passage store, the search took 8.7-10.5 ms after an encode
    against 5.5 ms with 10,000 rounds, and the encode itself was no slower. Read by libgomp
    when torch and faiss load it, so it is set before anything imports them.
    """
    os.environ.setdefault("GOMP_SPINCOUNT", "10000")
