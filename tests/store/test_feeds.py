"""Subscribed feeds against the local test site: add, list, remove, sync, and the CLI; kept
in each store of truth (SQLite, PostgreSQL)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.db import Store as SqliteStore
from store.errors import FetchError, NotFoundError
from store.feeds import add_feed, list_feeds, remove_feed, sync_feeds
from store.ingest import Ingestor
from store.seams import Store
from tests.doubles import HashingEmbedder
from tests.engines import OpenStore
from tests.store.web_fixtures.site import Site, serve


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with serve() as running:
        yield running


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()


@pytest.fixture
def ingestor(store: Store) -> Ingestor:
    return Ingestor(store, HashingEmbedder())


def keys(store: Store, collection: str | None = None) -> list[str]:
    return sorted(a.key for a in store.articles(collection=collection))


def test_add_list_remove(site: Site, store: Store) -> None:
    feed = add_feed(store, site.url("/rss.xml"), "news", allow_private=True)
    assert feed.title == "The Valley Ledger: Local news"
    assert feed.collection == "news" and feed.last_synced is None
    add_feed(store, site.url("/updates"), "notes", allow_private=True)
    add_feed(store, site.url("/rss.xml"), "news", allow_private=True)  # again: still one
    assert [(f.url, f.collection) for f in list_feeds(store)] == [
        (site.url("/rss.xml"), "news"),
        (site.url("/updates"), "notes"),
    ]
    assert keys(store) == []  # subscribing reads nothing yet

    [removed] = remove_feed(store, site.url("/rss.xml"))
    assert removed.collection == "news"
    assert [f.url for f in list_feeds(store)] == [site.url("/updates")]
    with pytest.raises(NotFoundError, match=r"no subscribed feed .*qabot feeds list"):
        remove_feed(store, site.url("/rss.xml"))


def test_add_refuses_a_page_that_is_not_a_feed(site: Site, store: Store) -> None:
    with pytest.raises(FetchError, match="not an RSS or Atom feed"):
        add_feed(store, site.url("/article"), "news", allow_private=True)
    with pytest.raises(FetchError, match="loopback"):
        add_feed(store, site.url("/rss.xml"), "news", allow_private=False)
    assert list_feeds(store) == []


def test_sync_ingests_new_entries_then_costs_nothing(
    site: Site, store: Store, ingestor: Ingestor
) -> None:
    add_feed(store, site.url("/rss.xml"), "news", allow_private=True)
    add_feed(store, site.url("/updates"), "notes", allow_private=True)

    first = sync_feeds(store, ingestor)
    assert [r.status for r in first.results] == ["synced", "synced"]
    assert len(first.ingest.added) == 4 and not first.ingest.skipped
    assert keys(store, "news") == [site.url("/article"), site.url("/story2")]
    assert keys(store, "notes") == [site.url("/notes/seed-library"), site.url("/notes/swifts")]
    rss = next(f for f in list_feeds(store) if f.collection == "news")
    assert rss.etag == '"rss-v1"' and rss.last_synced and rss.last_error is None

    pages_before = site.hits("/article") + site.hits("/story2")
    second = sync_feeds(store, ingestor)
    by_url = {r.url: r for r in second.results}
    assert by_url[site.url("/rss.xml")].status == "not-modified"
    assert site.requests[-2][1].get("If-None-Match") == '"rss-v1"'
    assert by_url[site.url("/updates")].status == "synced"  # no ETag: read, but all known
    assert second.ingest.added == [] and second.ingest.updated == []
    assert site.hits("/article") + site.hits("/story2") == pages_before
    assert "2 feeds: 1 unchanged, 0 failed; 0 articles added" in second.summary()


def test_failing_feed_is_recorded_and_the_others_sync(
    site: Site, store: Store, ingestor: Ingestor
) -> None:
    add_feed(store, site.url("/rss.xml"), "news", allow_private=True)
    add_feed(store, site.url("/updates"), "notes", allow_private=True)
    site.state["rss_status"] = 503
    try:
        report = sync_feeds(store, ingestor)
    finally:
        site.state["rss_status"] = 200
    [failed] = report.failed
    assert failed.url == site.url("/rss.xml")
    assert failed.error == "the server answered 503 Service Unavailable; try later"
    assert len(report.ingest.added) == 2 and keys(store, "news") == []
    rss = next(f for f in list_feeds(store) if f.collection == "news")
    assert rss.last_error == failed.error and rss.last_synced

    # once the feed is back, the next sync reads it and clears the error
    report = sync_feeds(store, ingestor, collection="news")
    assert not report.failed and len(report.ingest.added) == 2
    assert next(f for f in list_feeds(store) if f.collection == "news").last_error is None


def test_failing_entry_is_retried_on_the_next_sync(
    site: Site, store: Store, ingestor: Ingestor
) -> None:
    add_feed(store, site.url("/mixed-feed"), "news", allow_private=True)
    report = sync_feeds(store, ingestor)
    assert len(report.ingest.added) == 1
    [(source, reason)] = report.ingest.skipped
    assert source == site.url("/missing") and "404" in reason
    [feed] = list_feeds(store)
    assert feed.etag is None  # not kept, so the next sync does not get a 304
    again = sync_feeds(store, ingestor)
    assert again.results[0].status == "synced" and len(again.ingest.skipped) == 1


def test_sync_refuses_a_private_feed_subscribed_without_allow_private(
    site: Site, tmp_path: Path
) -> None:
    # A feed subscribed before the permission was kept with it: it has none.
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE feeds (url TEXT NOT NULL, collection TEXT NOT NULL, title TEXT,"
            " etag TEXT, last_modified TEXT, last_synced TEXT, last_error TEXT,"
            " PRIMARY KEY (url, collection))"
        )
        db.execute(
            "INSERT INTO feeds (url, collection) VALUES (?, 'news')", (site.url("/rss.xml"),)
        )
    store = SqliteStore(path, model="hashing-64", dim=64)
    try:
        report = sync_feeds(store, Ingestor(store, HashingEmbedder()))
        [failed] = report.failed
        assert "loopback" in str(failed.error) and "feeds add URL --allow-private" in str(
            failed.error
        )
        assert keys(store) == []
        add_feed(store, site.url("/rss.xml"), "news", allow_private=True)  # given again: kept
        report = sync_feeds(store, Ingestor(store, HashingEmbedder()))
        assert not report.failed and len(report.ingest.added) == 2
    finally:
        store.close()


@pytest.mark.slow
def test_cli_ingest_and_feeds(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    data = ["--data-dir", str(tmp_path)]
    assert main([*data, "ingest", site.url("/article"), "--allow-private"]) == 0
    assert "1 added, 0 updated, 0 unchanged, 0 skipped" in capsys.readouterr().out

    assert main([*data, "ingest", site.url("/article")]) == 1  # loopback refused by default
    assert "loopback" in capsys.readouterr().err

    assert main([*data, "feeds", "add", site.url("/updates"), "--allow-private"]) == 0
    assert "run `qabot feeds sync`" in capsys.readouterr().out
    assert main([*data, "feeds", "add", site.url("/article"), "--allow-private"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "not an RSS or Atom feed" in err
    assert err.count("\n") == 1

    assert main([*data, "feeds", "list", "--json"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["title"] == "Brennel Field Notes"

    assert main([*data, "feeds", "sync"]) == 0  # the feed keeps its --allow-private
    out = capsys.readouterr().out
    assert "1 feed: 0 unchanged, 0 failed; 2 articles added" in out

    assert main([*data, "feeds", "remove", site.url("/updates")]) == 0
    assert main([*data, "feeds", "remove", site.url("/updates")]) == 1
    assert "no subscribed feed" in capsys.readouterr().err
