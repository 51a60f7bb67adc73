"""Subscribed feeds: a list the store keeps (its `feeds` methods), and syncing them into
collections.

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

from store.errors import FetchError, NotFoundError, StoreError
from store.ingest import Ingestor, IngestReport
from store.seams import FeedRow, Store
from store.sources.feeds import (
    ENTRY_SECONDS,
    MAX_ENTRY_PAGES,
    EntryBudget,
    feed_articles,
    feed_title,
    is_feed,
    parse_feed,
)
from store.sources.http import DOWNLOAD_SECONDS, UrlError, fetch

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
    # Whether this feed, and the entry pages it links to, may be on private or loopback
    # addresses: given once, at `add_feed`, for this feed only.
    allow_private: bool = False


@dataclass
class FeedResult:
    """What syncing one feed did."""

    url: str
    collection: str
    status: Literal["synced", "not-modified", "failed"]
    report: IngestReport = field(default_factory=IngestReport)
    error: str | None = None  # why it failed, without the URL
    left: int = 0  # entries not read this time (the limits of one sync); read by the next


@dataclass
class FeedSyncReport:
    """What `sync_feeds` did: one result per feed, and the ingests added together."""

    results: list[FeedResult] = field(default_factory=list)
    ingest: IngestReport = field(default_factory=IngestReport)
    max_entry_pages: int = MAX_ENTRY_PAGES  # the limits this sync ran with
    entry_seconds: float = ENTRY_SECONDS

    @property
    def failed(self) -> list[FeedResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def not_modified(self) -> list[FeedResult]:
        return [r for r in self.results if r.status == "not-modified"]

    @property
    def left(self) -> int:
        """Entries left for the next sync by the limits of this one."""
        return sum(r.left for r in self.results)

    def summary(self) -> str:
        """One line for a terminal or a log."""
        i = self.ingest
        line = (
            f"{_plural(len(self.results), 'feed')}: {len(self.not_modified)} unchanged, "
            f"{len(self.failed)} failed; {len(i.added)} articles added, {len(i.updated)} "
            f"updated, {len(i.skipped)} entries skipped"
        )
        if self.left:
            entries = "entry" if self.left == 1 else "entries"
            line += (
                f"; {self.left:,} {entries} left for the next sync (at most "
                f"{_plural(self.max_entry_pages, 'entry page')} and {self.entry_seconds:g} s "
                "a feed)"
            )
        return line


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _row_to_feed(row: FeedRow) -> Feed:
    return Feed(*row[:-1], allow_private=row[-1])


def list_feeds(store: Store, collection: str | None = None) -> list[Feed]:
    """The subscribed feeds, by collection then URL."""
    return [_row_to_feed(row) for row in store.feeds(collection)]


def add_feed(store: Store, url: str, collection: str, *, allow_private: bool) -> Feed:
    """Subscribe `collection` to the feed at `url`, after fetching it once to check that it
    is an RSS or Atom feed. Entries are read by the next `sync_feeds`.

    `allow_private` lets this feed, and the entry pages it links to, be on private or
    loopback addresses (an intranet feed); it is stored with the feed and applies to its
    fetches only. Subscribing again refreshes the title and sets the permission as given.
    """
    response = fetch(url, allow_private=allow_private)
    if not is_feed(response.body):
        raise FetchError(
            f"{url} is not an RSS or Atom feed ({response.content_type or 'no content type'}); "
            "give the feed's own address, which sites link as RSS or Atom"
        )
    title = feed_title(response.body)
    store.put_feed(url, collection, title, allow_private)
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
    for feed in feeds:
        store.remove_feed(feed.url, feed.collection)
    return feeds


def sync_feeds(
    store: Store,
    ingestor: Ingestor,
    *,
    collection: str | None = None,
    progress: Callable[[Feed], None] | None = None,
    max_entry_pages: int = MAX_ENTRY_PAGES,
    entry_seconds: float = ENTRY_SECONDS,
    timeout: float = DOWNLOAD_SECONDS,
) -> FeedSyncReport:
    """Fetch every subscribed feed (or those of `collection`) and ingest its new entries.

    Each feed is asked conditionally; a 304 costs nothing. Each feed's own permission
    (`Feed.allow_private`, given at `add_feed`) says whether it and its entry pages may be
    on private addresses. A feed that fails is recorded (`last_error`) and reported, and
    the others go on. A feed reads at most `max_entry_pages` entry pages and starts no
    entry after `entry_seconds`; each download takes at most `timeout` seconds. When some
    entries could not be read or were left by those limits, the feed's ETag is not kept,
    so the next sync asks again and reads them. `progress(feed)` is called before each feed.

    Blocking (network and embedding). A SQLite `store` holds one connection without a
    lock, so a caller on another thread (a Discord bot's executor) must give this function
    a Store and Ingestor of its own (`bot.app.writer_for`: on the same file, where WAL lets
    the answering connection keep reading, or the same database), and must not run two
    syncs at once; sharing the bot's Store across threads would interleave transactions on
    one connection.
    """
    report = FeedSyncReport(max_entry_pages=max_entry_pages, entry_seconds=entry_seconds)
    for feed in list_feeds(store, collection):
        if progress:
            progress(feed)
        budget = EntryBudget(pages=max_entry_pages, seconds=entry_seconds, timeout=timeout)
        result = _sync_one(store, ingestor, feed, budget)
        report.results.append(result)
        report.ingest.merge(result.report)
    return report


def _sync_one(store: Store, ingestor: Ingestor, feed: Feed, budget: EntryBudget) -> FeedResult:
    result = FeedResult(feed.url, feed.collection, "synced")
    try:
        response = fetch(
            feed.url,
            allow_private=feed.allow_private,
            timeout=budget.timeout,
            etag=feed.etag,
            last_modified=feed.last_modified,
        )
        if response.status == 304:
            result.status = "not-modified"
            _record(store, feed, etag=feed.etag, last_modified=feed.last_modified, title=feed.title)
            return result
        if not is_feed(response.body):
            raise FetchError("no longer an RSS or Atom feed; remove it or fix the URL")
        parsed = parse_feed(response.body)
        title = feed_title(parsed) or feed.title
        items = feed_articles(
            response,
            allow_private=feed.allow_private,
            known=store.is_known,
            budget=budget,
            parsed=parsed,
        )
        result.report = ingestor.ingest(items, collection=feed.collection)
        result.left = budget.left
        if budget.left:
            log.info("feed %s: %s", feed.url, budget.describe_left("sync"))
        # Ask again next time, not conditionally, to retry failed entries and read those left.
        keep = not result.report.skipped and not budget.left
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
    store.record_feed_sync(
        feed.url,
        feed.collection,
        etag=etag,
        last_modified=last_modified,
        title=title,
        synced=_now(),
        error=error,
    )
