"""`qabot feeds`: subscribe to RSS/Atom feeds, list and remove them, and sync them.

Its `COMMANDS` join the `qabot` table (bot/cli.py). A thin layer over store.feeds: it
parses arguments, calls the helper and prints the result; errors reach cli.main, which
prints them as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot.commands import Command, arg
from bot.settings import Settings


def cmd_feeds(args: argparse.Namespace, settings: Settings) -> int:
    """Keep up with RSS and Atom feeds: subscribe, list, remove, sync.

    `qabot feeds add URL` subscribes a collection to a feed; `qabot feeds sync` reads every
    subscribed feed and ingests the entries not stored yet (the Discord bot also syncs on
    a schedule, QABOT_FEED_SYNC_MINUTES). Unchanged feeds cost one small request.
    """
    print("Use `qabot feeds add URL`, `list`, `remove URL` or `sync`.", file=sys.stderr)
    return 2


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    """Subscribe to a feed; its entries are ingested by `qabot feeds sync`.

    The URL is fetched once to check that it is an RSS or Atom feed. --allow-private is
    kept with this feed: `qabot feeds sync` lets it, and only it, reach private addresses.
    """
    from bot.app import App
    from store.feeds import add_feed

    app = App(settings)
    try:
        feed = add_feed(
            app.store,
            args.url,
            args.collection or settings.collection,
            allow_private=args.allow_private,
        )
    finally:
        app.close()
    title = f" ({feed.title})" if feed.title else ""
    private = ", private addresses allowed" if feed.allow_private else ""
    print(
        f"subscribed {feed.collection!r} to {feed.url}{title}{private}; "
        "run `qabot feeds sync` to read its entries"
    )
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """List the subscribed feeds, their last sync and last error."""
    from dataclasses import asdict

    from bot.app import App
    from store.feeds import list_feeds

    app = App(settings)
    try:
        feeds = list_feeds(app.store)
    finally:
        app.close()
    if args.json:
        for feed in feeds:
            print(json.dumps(asdict(feed), ensure_ascii=False))
        return 0
    if not feeds:
        print("no feeds subscribed; add one with `qabot feeds add URL`")
        return 0
    for feed in feeds:
        synced = f"synced {feed.last_synced}" if feed.last_synced else "never synced"
        private = "  (private addresses allowed)" if feed.allow_private else ""
        print(f"{feed.url}  [{feed.collection}]  {feed.title or '(no title)'}  {synced}{private}")
        if feed.last_error:
            print(f"    last error: {feed.last_error}")
    return 0


def cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    """Unsubscribe from a feed; the articles already ingested stay."""
    from bot.app import App
    from store.feeds import remove_feed

    app = App(settings)
    try:
        removed = remove_feed(app.store, args.url, args.collection)
    finally:
        app.close()
    for feed in removed:
        print(f"unsubscribed {feed.collection!r} from {feed.url}")
    return 0


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    """Read every subscribed feed now and ingest the entries not stored yet.

    Each feed is asked conditionally, so an unchanged one costs nothing. A failing feed is
    reported and recorded (see `qabot feeds list`); the others still sync. A feed reads at
    most 50 entry pages a sync, within 60 s; the entries left are read by the next sync.
    A feed added with --allow-private may reach private addresses; the others may not.
    Exits 1 when any feed failed.
    """
    from bot.app import App
    from bot.errors import BotError
    from store.feeds import list_feeds, sync_feeds

    if args.allow_private:
        raise BotError(
            "`feeds sync` takes no --allow-private: the permission belongs to one feed, so "
            "subscribe that feed with `qabot feeds add URL --allow-private` (again, for a "
            "feed added before) and run `qabot feeds sync`"
        )

    app = App(settings)
    try:
        if not list_feeds(app.store, args.collection):
            print("no feeds subscribed; add one with `qabot feeds add URL`")
            return 0

        def say(feed: Any) -> None:
            if not args.json:
                print(f"syncing {feed.url} ...", file=sys.stderr)

        report = sync_feeds(
            app.store,
            app.ingestor,
            collection=args.collection,
            progress=say,
        )
    finally:
        app.close()
    if args.json:
        print(
            json.dumps(
                {
                    "feeds": [
                        {
                            "url": r.url,
                            "collection": r.collection,
                            "status": r.status,
                            "error": r.error,
                            "left": r.left,
                            "added": r.report.added,
                            "updated": r.report.updated,
                            "skipped": [
                                {"source": s, "reason": why} for s, why in r.report.skipped
                            ],
                        }
                        for r in report.results
                    ]
                },
                ensure_ascii=False,
            )
        )
    else:
        for source, reason in report.ingest.skipped:
            print(f"skipped {source}: {reason}", file=sys.stderr)
        for result in report.failed:
            print(f"failed {result.url}: {result.error}", file=sys.stderr)
        print(report.summary())
    return 1 if report.failed else 0


COMMANDS = [
    Command(
        "feeds",
        cmd_feeds,
        subcommands=[
            Command(
                "add",
                cmd_add,
                [
                    arg("url", metavar="URL", help="the feed's address (RSS 2.0 or Atom)"),
                    arg(
                        "--collection",
                        help="collection its entries go to (default: $QABOT_COLLECTION)",
                    ),
                    arg(
                        "--allow-private",
                        action="store_true",
                        help="allow this feed, and the entry pages it links to, on private or "
                        "loopback addresses (kept with the feed; other feeds stay refused)",
                    ),
                ],
                keep_layout=True,
            ),
            Command(
                "list",
                cmd_list,
                [arg("--json", action="store_true", help="print one JSON object per feed")],
                keep_layout=True,
            ),
            Command(
                "remove",
                cmd_remove,
                [
                    arg(
                        "url",
                        metavar="URL",
                        help="the feed's address, as `qabot feeds list` shows it",
                    ),
                    arg("--collection", help="only its subscription in this collection"),
                ],
                keep_layout=True,
            ),
            Command(
                "sync",
                cmd_sync,
                [
                    arg("--collection", help="only the feeds of this collection"),
                    # Refused with a message: the permission belongs to one feed
                    # (`feeds add --allow-private`).
                    arg("--allow-private", action="store_true", help=argparse.SUPPRESS),
                    arg("--json", action="store_true", help="print the result as JSON"),
                ],
                keep_layout=True,
            ),
        ],
        title="actions",
        metavar="ACTION",
        keep_layout=True,
    )
]
