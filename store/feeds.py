"""Subscribed feeds: a list in the store's `feeds` table, and syncing them into collections.

A feed is subscribed per collection; syncing asks each feed conditionally (its stored ETag
and Last-Modified), so an unchanged feed costs one small request, and ingests only the
entries the store does not hold yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from store.db import Store
from store.errors import FetchError, NotFoundError, StoreError
from store.ingest import Ingestor, IngestReport
from store.web import UrlError, feed_articles, feed_title, fetch, is_feed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Feed:
    """A subscription: the feed's URL, the collection its entries go to, and its sync state."""

    url: str
    collection: str
    title: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_synced: str | None = None  # ISO time of the last attempt
    last_error: str | None = None  # why the last attempt failed (no URL); None when it worked


@dataclass
class FeedResult:
    """What syncing one feed did."""

    url: str
    collection: str
    status: Literal["synced", "not-modified", "failed"]
    report: IngestReport = field(default_factory=IngestReport)
    error: str | None = None  # why it failed, without the URL


@dataclass
class FeedSyncReport:
    """What `sync_feeds` did: one result per feed, and the ingests added together."""

    results: list[FeedResult] = field(default_factory=list)
    ingest: IngestReport = field(default_factory=IngestReport)

    @property
    def failed(self) -> list[FeedResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def not_modified(self) -> list[FeedResult]:
        return [r for r in self.results if r.status == "not-modified"]

    def summary(self) -> str:
        """One line for a terminal or a log."""
        i = self.ingest
        return (
            f"{_plural(len(self.results), 'feed')}: {len(self.not_modified)} unchanged, "
            f"{len(self.failed)} failed; {len(i.added)} articles added, {len(i.updated)} "
            f"updated, {len(i.skipped)} entries skipped"
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _row_to_feed(
    row: tuple[str, str, str | None, str | None, str | None, str | None, str | None],
) -> Feed:
    return Feed(*row)


def list_feeds(store: Store, collection: str | None = None) -> list[Feed]:
    """The subscribed feeds, by collection then URL."""
    sql = "SELECT url, collection, title, etag, last_modified, last_synced, last_error FROM feeds"
    args: tuple[object, ...] = ()
    if collection is not None:
        sql += " WHERE collection = ?"
        args = (collection,)
    return [_row_to_feed(row) for row in store.execute(sql + " ORDER BY collection, url", args)]


def add_feed(store: Store, url: str, collection: str, *, allow_private: bool) -> Feed:
    """Subscribe `collection` to the feed at `url`, after fetching it once to check that it
    is an RSS or Atom feed. Subscribing again refreshes its title. Entries are read by the
    next `sync_feeds`."""
    response = fetch(url, allow_private=allow_private)
    if not is_feed(response.body):
        raise FetchError(
            f"{url} is not an RSS or Atom feed ({response.content_type or 'no content type'}); "
            "give the feed's own address, which sites link as RSS or Atom"
        )
    title = feed_title(response.body)
    with store.side_transaction() as db:
        db.execute(
            "INSERT INTO feeds (url, collection, title) VALUES (?, ?, ?)"
            " ON CONFLICT (url, collection) DO UPDATE SET title = excluded.title",
            (url, collection, title),
        )
    return next(f for f in list_feeds(store, collection) if f.url == url)


def remove_feed(store: Store, url: str, collection: str | None = None) -> list[Feed]:
    """Unsubscribe from `url` (in every collection, or only `collection`); returns what was
    removed. Stored articles stay. NotFoundError when nothing matched."""
    feeds = [f for f in list_feeds(store, collection) if f.url == url]
    if not feeds:
        where = f" in the collection {collection!r}" if collection else ""
        raise NotFoundError(
            f"no subscribed feed {url}{where}; `qabot feeds list` shows the subscribed ones"
        )
    with store.side_transaction() as db:
        for feed in feeds:
            db.execute(
                "DELETE FROM feeds WHERE url = ? AND collection = ?", (feed.url, feed.collection)
            )
    return feeds


def sync_feeds(
    store: Store,
    ingestor: Ingestor,
    *,
    allow_private: bool,
    collection: str | None = None,
    progress: Callable[[Feed], None] | None = None,
) -> FeedSyncReport:
    """Fetch every subscribed feed (or those of `collection`) and ingest its new entries.

    Each feed is asked conditionally; a 304 costs nothing. A feed that fails is recorded
    (`last_error`) and reported, and the others go on. When some entries of a feed could
    not be read, its ETag is not kept, so the next sync asks again and retries them.
    `progress(feed)` is called before each feed.

    Blocking (network and embedding). `store` holds one SQLite connection without a lock,
    so a caller on another thread (a Discord bot's executor) must give this function a
    Store and Ingestor of its own, opened on the same file (WAL lets the answering
    connection keep reading), and must not run two syncs at once; sharing the bot's Store
    across threads would interleave transactions on one connection.
    """
    report = FeedSyncReport()
    for feed in list_feeds(store, collection):
        if progress:
            progress(feed)
        result = _sync_one(store, ingestor, feed, allow_private=allow_private)
        report.results.append(result)
        report.ingest.merge(result.report)
    return report


def _sync_one(store: Store, ingestor: Ingestor, feed: Feed, *, allow_private: bool) -> FeedResult:
    result = FeedResult(feed.url, feed.collection, "synced")
    try:
        response = fetch(
            feed.url,
            allow_private=allow_private,
            etag=feed.etag,
            last_modified=feed.last_modified,
        )
        if response.status == 304:
            result.status = "not-modified"
            _record(store, feed, etag=feed.etag, last_modified=feed.last_modified, title=feed.title)
            return result
        if not is_feed(response.body):
            raise FetchError("no longer an RSS or Atom feed; remove it or fix the URL")
        title = feed_title(response.body) or feed.title
        items = feed_articles(response, allow_private=allow_private, known=store.is_known)
        result.report = ingestor.ingest(items, collection=feed.collection)
        keep = not result.report.skipped  # retry failed entries next time
        _record(
            store,
            feed,
            etag=response.etag if keep else None,
            last_modified=response.last_modified if keep else None,
            title=title,
        )
    except UrlError as exc:
        result.status, result.error = "failed", exc.reason
    except StoreError as exc:
        result.status, result.error = "failed", str(exc)
    except Exception as exc:  # a bug or an odd feed must not stop the other feeds
        log.exception("syncing the feed %s failed", feed.url)
        result.status, result.error = "failed", f"unexpected error ({exc})"
    if result.error:
        log.warning("feed %s: %s", feed.url, result.error)
        _record(
            store,
            feed,
            etag=feed.etag,
            last_modified=feed.last_modified,
            title=feed.title,
            error=result.error,
        )
    return result


def _record(
    store: Store,
    feed: Feed,
    *,
    etag: str | None,
    last_modified: str | None,
    title: str | None,
    error: str | None = None,
) -> None:
    with store.side_transaction() as db:
        db.execute(
            "UPDATE feeds SET etag = ?, last_modified = ?, title = ?, last_synced = ?,"
            " last_error = ? WHERE url = ? AND collection = ?",
            (etag, last_modified, title, _now(), error, feed.url, feed.collection),
        )
