"""`qabot migrate`: move the data folder's SQLite store into PostgreSQL (store/copy_store.py)."""

from __future__ import annotations

import argparse
import sys

from bot.commands import Command, arg
from bot.errors import BotError
from bot.settings import Settings


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Copy the data folder's SQLite store into an empty PostgreSQL database.

    Copies everything it holds (articles, sentences, passages, vectors, token vectors,
    feeds, the answers shown and their votes) in one transaction, keeping row ids; the
    SQLite file is only read. Then set QABOT_DATABASE_URL to the same URL to use it.
    --to defaults to QABOT_DATABASE_URL.
    """
    from store.copy_store import copy_to_postgres

    url = args.to or (
        settings.database_url.get_secret_value().strip() if settings.database_url else None
    )
    if not url:
        raise BotError(
            "give the database to copy into: qabot migrate --to postgresql://user@host/db "
            "(or set QABOT_DATABASE_URL)"
        )
    if not url.startswith(("postgresql://", "postgres://")):
        raise BotError(f"--to takes a postgresql:// URI, not {url.split(':', 1)[0]}:...")
    done: dict[str, int] = {}

    def progress(table: str, rows: int) -> None:
        done[table] = done.get(table, 0) + rows
        print(f"\r{table}: {done[table]:,} rows", end="", file=sys.stderr, flush=True)

    report = copy_to_postgres(settings.db_path, url, progress=progress)
    print(file=sys.stderr)
    print(report.summary())
    print("set QABOT_DATABASE_URL to that URL to run on it; the SQLite file is left as it was")
    return 0


COMMANDS = [
    Command(
        "migrate",
        cmd_migrate,
        [
            arg(
                "--to",
                metavar="URL",
                help="the PostgreSQL database to copy into (default: QABOT_DATABASE_URL)",
            )
        ],
    )
]
