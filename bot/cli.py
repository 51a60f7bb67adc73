"""The `qabot` command: ingest articles, ask questions, manage the store, run the bot.

A thin layer: it parses arguments, calls the store and retriever, prints the result, and
turns their errors into one-line messages (`Error: ...`, exit status 1), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bot import commands
from bot.commands import Command, arg, run
from bot.errors import BotError
from bot.settings import Settings
from bot.terminal import human_date, render_answer
from store.errors import SkipSource
from store.models import RawArticle

log = logging.getLogger("qabot")

SAMPLE_QUESTION = "Where did the Russian elite units land?"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `qabot` console script."""
    return run(argv, all_commands())


def build_parser() -> argparse.ArgumentParser:
    return commands.build_parser(all_commands())


def all_commands() -> list[Command]:
    """The table of every `qabot` command: this module's, then each command module's."""
    from bot import bench_cmd, chat, eval_cmd, feeds_cmd, migrate_cmd, serve, train_cmd

    return [
        *COMMANDS,
        *chat.COMMANDS,
        *eval_cmd.COMMANDS,
        *feeds_cmd.COMMANDS,
        *bench_cmd.COMMANDS,
        *serve.COMMANDS,
        *migrate_cmd.COMMANDS,
        *train_cmd.COMMANDS,
    ]


# -- commands -------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    """Add articles from files, folders or URLs; unchanged ones cost nothing.

    Files: .txt and .md as pasted from a web page (title on the first line), .html pages,
    .json / .jsonl with one article per object (title, text, url, publisher, published,
    author). An edited article replaces its old version. Bad inputs are skipped with a reason.
    """
    from bot.app import App
    from store.models import printable
    from store.sources.files import find_files
    from store.sources.read import is_url, read_source

    app = App(settings)
    collection = args.collection or settings.collection
    files: list[Path | SkipSource] = []
    urls: list[str] = []
    # The files are found first, to size the progress bar; they are read before the URLs.
    for source in args.sources:
        if is_url(source):
            urls.append(source)
        else:
            files.extend(find_files(Path(source).expanduser()))

    def items() -> Iterator[RawArticle | SkipSource]:
        # Feed entries stored already are not fetched again (an edited page is, as a page).
        for found in [*files, *urls]:
            if isinstance(found, SkipSource):
                yield found
            else:
                yield from read_source(
                    found, allow_private=args.allow_private, known=app.store.is_known
                )

    # One bar tick per article. A JSON Lines file or a feed holds an unknown number of them:
    # then, in a terminal, the bar counts articles and their rate instead of a share.
    unsized = bool(urls) or any(
        isinstance(f, Path) and f.suffix.lower() in (".json", ".jsonl") for f in files
    )
    total = None if unsized else len(files)
    show = not args.json and (total > 5 if total is not None else sys.stderr.isatty())
    bar = _progress(total, "ingesting", unit="article") if show else None
    try:
        report = app.ingestor.ingest(
            items(), collection=collection, progress=bar.update if bar else None
        )
    finally:
        if bar:
            bar.close()
    if args.json:
        print(
            json.dumps(
                {
                    "added": report.added,
                    "updated": report.updated,
                    "unchanged": report.unchanged,
                    # JSON escapes control characters itself; a name's bytes that are
                    # not UTF-8 are shown as \xff, as they cannot be printed as they are.
                    "skipped": [
                        {
                            "source": printable(s, controls=False),
                            "reason": printable(r, controls=False),
                        }
                        for s, r in report.skipped
                    ],
                    "sentences": report.sentences,
                    "passages": report.passages,
                    "embedded": report.embedded,
                    "upgraded": report.upgraded,
                },
                ensure_ascii=False,
            )
        )
    else:
        for source, reason in report.skipped:
            # A file name may hold a newline or an ANSI escape: shown escaped, it can
            # neither forge a line of this summary nor drive the terminal.
            print(f"skipped {printable(source)}: {printable(reason)}", file=sys.stderr)
        print(
            f"{len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {len(report.skipped)} skipped "
            f"({report.sentences} sentences, {report.passages} passages, "
            f"{report.embedded} texts embedded)"
        )
        if report.upgraded:
            print(
                f"{report.upgraded} sentences stored by an older qabot were given the token "
                "vectors the ranking uses"
            )
    app.close()
    return 0 if (report.added or report.updated or report.unchanged or not report.skipped) else 1


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    """Ask a question; prints the answering sentences, quoted exactly, with their sources.

    When nothing stored answers the question, says so and quotes nothing.
    """
    from bot.serve import ask_resident, socket_path

    question = " ".join(args.question)
    if not settings.has_store():
        raise BotError(
            f"no articles stored in {settings.data_dir}; add some with `qabot ingest FILES`"
        )
    k = args.k or settings.answers
    history = read_history(args.history) if args.history else []
    # A running `qabot serve` has the model and indexes loaded: ask it first.
    answer = ask_resident(
        socket_path(settings),
        question,
        k=k,
        mode=args.mode,
        collections=args.collection,
        abstain=settings.abstain,
        history=history,
    )
    if answer is None:
        from bot.app import App
        from retriever.conversation import parse_history

        app = App(settings)
        ask = {"k": k, "mode": args.mode, "collections": args.collection}
        conversation = app.retriever.resume(parse_history(history, str(args.history)), **ask)
        answer = app.retriever.ask(question, history=conversation, **ask)
    if args.json:
        print(json.dumps(answer.to_json_dict(), ensure_ascii=False))
        return 0
    if answer.understood:
        print(f"(read as: {answer.understood})")
    print(render_answer(answer))
    return 0


def read_history(name: str) -> list[Any]:
    """The conversation so far from a file (or `-`, stdin): a JSON list, or JSON lines, of
    earlier questions (strings) and answers (as `qabot ask --json` prints them)."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise BotError(f"cannot read the history {name}: {exc.strerror}") from exc
    text = text.strip()
    if not text:
        return []
    try:
        value = json.loads(text)
        if not isinstance(value, list):
            value = [value]
    except ValueError:
        value = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value.append(json.loads(line))
            except ValueError as exc:
                raise BotError(
                    f"the history {name} line {n} is not JSON ({exc.msg}); give a JSON list "
                    "or one JSON question or answer a line"
                ) from exc
    from retriever.conversation import parse_history
    from retriever.errors import BadQuestionError

    try:
        parse_history(value, f"the history {name}")
    except BadQuestionError as exc:
        raise BotError(str(exc)) from exc
    return list(value)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """List stored articles: id, title, publisher, date, sentence count and source."""
    from bot.app import App

    if not settings.has_store():
        print("No articles stored yet; add some with `qabot ingest FILES`.")
        return 0
    app = App(settings)
    articles = app.store.articles(collection=args.collection)
    if args.json:
        for a in articles:
            print(a.model_dump_json())
        return 0
    if not articles:
        print("No articles stored yet; add some with `qabot ingest FILES`.")
    for a in articles:
        when = human_date(a.published) if a.published else "undated"
        print(
            f"{a.id[:12]}  {a.title}  [{a.publisher or '-'}, {when}, "
            f"{a.sentences} sentences]  {a.url or a.source or a.key}"
        )
    return 0


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    """Show what the store holds: articles, sentences, passages, model, size on disk."""
    from bot.app import App
    from store.errors import StoreUnavailableError

    app = App(settings)
    try:
        stats = app.store.stats()
    except StoreUnavailableError as exc:  # say which store, and that it is down
        down = {"store": "postgresql", "postgresql": f"NOT ANSWERING: {exc}"}
        print(json.dumps(down) if args.json else "\n".join(f"{k}: {v}" for k, v in down.items()))
        return 1
    stats.update(app.index_source.describe(app.store, settings.index_dir))
    stats["data_dir"] = str(settings.data_dir)
    if args.json:
        print(json.dumps(stats))
        return 0
    width = max(map(len, stats))
    for key, value in stats.items():
        print(f"{key:>{width}}: {value}")
    return 0


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    """Build the search indexes anew from the store (in the data folder, or in Qdrant when
    QABOT_QDRANT_URL is set).

    They are derived from the store and rebuilt on their own when missing, stale or
    unreadable; this is for when they are in doubt (a Qdrant restored from an old backup,
    points deleted by hand) or to have them ready before the first question. Nothing in the
    store changes; a running bot or `qabot serve` answers from what it holds meanwhile."""
    from bot.app import App

    app = App(settings)
    try:
        store, source = app.store, app.index_source
        total = store.unit_count("sentences") + store.unit_count("passages")
        started = time.perf_counter()
        bar = None if args.json else _progress(total, "rebuilding", "rows")
        try:
            indexes = source.rebuild(store, settings.index_dir, bar.update if bar else None)
        finally:
            if bar is not None:
                bar.close()
        report = {
            "search": source.describe(store, settings.index_dir).get("search", source.name),
            "generation": indexes.generation,
            "sentences": len(indexes.sentences.rowids),
            "passages": len(indexes.passages.rowids),
            "seconds": round(time.perf_counter() - started, 2),
        }
    finally:
        app.close()
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"rebuilt generation {report['generation']} in {report['search']}: "
            f"{report['sentences']} sentences, {report['passages']} passages "
            f"in {report['seconds']} s"
        )
    return 0


def cmd_forget(args: argparse.Namespace, settings: Settings) -> int:
    """Remove an article (and its sentences, passages and vectors) from the store."""
    from bot.app import App

    app = App(settings)
    removed = app.store.forget(args.article, args.collection)
    for a in removed:
        print(f"forgot {a.id[:12]}  {a.title}")
    return 0


def cmd_discord(args: argparse.Namespace, settings: Settings) -> int:
    """Run the Discord bot (needs DISCORD_TOKEN in the environment or .env)."""
    token = settings.require_token()
    from bot.discord_app import run_bot

    run_bot(settings, token)
    return 0


def cmd_votes(args: argparse.Namespace, settings: Settings) -> int:
    """Show the 👍 / 👎 votes given in Discord, or export them as evaluation cases."""
    from bot.app import App
    from bot.votes import export_cases, votes

    if not settings.has_store():
        print("No store yet, so no votes.")
        return 0
    app = App(settings)
    if args.export:
        written, left_out = export_cases(app.store, args.export)
        print(
            f"wrote {written} cases to {args.export} ({left_out} answers voted down left out); "
            f"run `qabot eval cases {args.export}`"
        )
        return 0
    found = votes(app.store)
    if not found:
        print("No votes yet.")
    for v in found:
        mark = "👍" if v.vote > 0 else "👎"
        first = v.sentences[0] if v.sentences else "(no answer)"
        print(f"{mark} {v.question}\n     {first}")
    return 0


def _progress(total: int | None, desc: str, unit: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)


COMMANDS = [
    Command(
        "ingest",
        cmd_ingest,
        [
            arg(
                "sources",
                nargs="+",
                metavar="SOURCE",
                help="files or folders of .txt .md .html .json .jsonl, or http(s) URLs",
            ),
            arg("--collection", help="collection to add to (default: $QABOT_COLLECTION)"),
            arg(
                "--allow-private",
                action="store_true",
                help="allow URLs on private or loopback addresses",
            ),
            arg("--json", action="store_true", help="print the summary as JSON"),
        ],
    ),
    Command(
        "ask",
        cmd_ask,
        [
            arg("question", nargs="+", help="the question (quotes optional)"),
            arg("-k", type=int, default=None, help="how many sentences to quote (default 3)"),
            arg(
                "--mode",
                choices=["hybrid", "dense", "bm25"],
                default="hybrid",
                help="retrieval mode (default hybrid)",
            ),
            arg(
                "--collection",
                action="append",
                help="ask only this collection (repeatable; default: all)",
            ),
            arg(
                "--history",
                metavar="FILE",
                help="the conversation so far (a follow-up): a JSON list or JSON lines of "
                "earlier questions and `--json` answers, oldest first; - reads stdin",
            ),
            arg("--json", action="store_true", help="print the answer as one JSON object"),
        ],
    ),
    Command(
        "list",
        cmd_list,
        [
            arg("--collection", help="only this collection"),
            arg("--json", action="store_true", help="print JSON lines"),
        ],
    ),
    Command("stats", cmd_stats, [arg("--json", action="store_true", help="print JSON")]),
    Command("rebuild", cmd_rebuild, [arg("--json", action="store_true", help="print JSON")]),
    Command(
        "forget",
        cmd_forget,
        [
            arg("article", help="article id (8+ characters), URL, file URI or exact title"),
            arg("--collection", help="only in this collection"),
        ],
    ),
    Command("discord", cmd_discord),
    Command(
        "votes",
        cmd_votes,
        [
            arg(
                "--export",
                type=Path,
                metavar="FILE.jsonl",
                help="write the 👍 answers as cases for `qabot eval cases FILE.jsonl`",
            )
        ],
    ),
]


if __name__ == "__main__":
    sys.exit(main())
