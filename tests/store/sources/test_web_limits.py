"""Downloads and feed reads are bounded: a whole-download deadline that a trickling server
cannot stretch, a cap and a time budget on the entry pages one feed sync fetches, and
`--allow-private` that belongs to the feed it was given for."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

import pytest

from store.db import Store
from store.errors import FetchError
from store.feeds import add_feed, list_feeds, sync_feeds
from store.ingest import Ingestor
from store.sources.http import fetch
from store.sources.read import fetch_articles
from tests.doubles import HashingEmbedder
from tests.store.local_server import Handler, Server, serve
from tests.store.sources.test_web import route_public_names

ARTICLE = (
    "<html><head><title>Entry {n}</title></head><body><article><h1>Entry {n}</h1>"
    "<p>The river council met on day {n} to discuss the new footbridge over the Brennel, "
    "and the members agreed that the lighting on the deck should run on solar power.</p>"
    "</article></body></html>"
)


def trickle_headers(h: Handler) -> None:
    h.trickle(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 20\r\n\r\n" * 50)


def trickle_body(h: Handler, every: float = 0.25) -> None:
    body = ARTICLE.format(n=1).encode()
    h.send_response(200)
    h.send_header("Content-Type", "text/html")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.flush()
    h.trickle(body, every=every)


def slow_redirect(h: Handler) -> None:
    time.sleep(0.6)
    h.send_response(302)
    h.send_header("Location", "/trickle-body")
    h.send_header("Content-Length", "0")
    h.end_headers()


def page(h: Handler) -> None:
    n = h.path.rsplit("/", 1)[1]
    h.send(ARTICLE.format(n=n).encode())


def slow_page(h: Handler) -> None:
    time.sleep(0.3)
    page(h)


def rss(base: str, links: list[str]) -> bytes:
    items = "".join(
        f"<item><title>Entry {i}</title><link>{link}</link><guid>{link}</guid>"
        f"<description>A short teaser {i}.</description></item>"
        for i, link in enumerate(links)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Council news</title>'
        f"<link>{base}/</link><description>x</description>{items}</channel></rss>"
    ).encode()


def many_entries(h: Handler) -> None:
    etag = '"many-v1"'
    if h.headers.get("If-None-Match") == etag:
        h.send_response(304)
        h.send_header("ETag", etag)
        h.send_header("Content-Length", "0")
        h.end_headers()
        return
    body = rss(h.base, [f"{h.base}/entry/{i}" for i in range(25)])
    h.send_response(200)
    h.send_header("Content-Type", "application/rss+xml")
    h.send_header("Content-Length", str(len(body)))
    h.send_header("ETag", etag)
    h.end_headers()
    h.wfile.write(body)


ROUTES = {
    "/trickle-headers": trickle_headers,
    "/trickle-body": trickle_body,
    "/trickle-body-1s": lambda h: trickle_body(h, every=1.0),
    "/slow-redirect": slow_redirect,
    "/good": lambda h: h.send(ARTICLE.format(n="good").encode()),
    "/many.xml": many_entries,
    "/slow-many.xml": lambda h: h.send(
        rss(h.base, [f"{h.base}/slow/{i}" for i in range(10)]), "application/rss+xml"
    ),
    "/intranet.xml": lambda h: h.send(
        rss(h.base, [f"{h.base}/entry/intranet-{i}" for i in range(2)]), "application/rss+xml"
    ),
    # a public feed whose entries point at the loopback address
    "/public.xml": lambda h: h.send(
        rss(h.base, [f"{h.base}/secret/{i}" for i in range(2)]), "application/rss+xml"
    ),
}
for n in range(200):
    ROUTES[f"/entry/{n}"] = page
    ROUTES[f"/slow/{n}"] = slow_page
ROUTES["/entry/intranet-0"] = ROUTES["/entry/intranet-1"] = page
ROUTES["/secret/0"] = ROUTES["/secret/1"] = page


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serve(ROUTES) as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "qabot.sqlite3", model="hashing-64", dim=64)
    yield s
    s.close()


@pytest.fixture
def ingestor(store: Store) -> Ingestor:
    return Ingestor(store, HashingEmbedder())


# -- the whole-download deadline ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/trickle-headers", "/trickle-body", "/slow-redirect"])
def test_a_trickling_server_cannot_stretch_the_download(server: Server, path: str) -> None:
    start = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch(server.url(path), allow_private=True, timeout=1.5)
    took = time.monotonic() - start
    assert took < 2.5, f"{path} kept the download for {took:.1f} s"
    message = str(info.value)
    assert message.startswith(server.url(path) + ": took longer than 1.5 s")
    assert "\n" not in message


def test_the_rest_of_a_batch_is_stored_after_a_trickling_url(
    server: Server, store: Store, ingestor: Ingestor
) -> None:
    items = chain(
        fetch_articles(server.url("/trickle-headers"), allow_private=True, timeout=1.0),
        fetch_articles(server.url("/trickle-body"), allow_private=True, timeout=1.0),
        fetch_articles(server.url("/good"), allow_private=True),
    )
    report = ingestor.ingest(items)
    assert [s for s, _ in report.skipped] == [
        server.url("/trickle-headers"),
        server.url("/trickle-body"),
    ]
    assert all(why.startswith("took longer than 1 s") for _, why in report.skipped)
    assert [r[0] for r in store.execute("SELECT key FROM articles")] == [server.url("/good")]


@pytest.mark.slow
def test_cli_ingest_ends_within_the_documented_10_s(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    data = ["--data-dir", str(tmp_path)]
    code = main(
        [*data, "ingest", server.url("/trickle-body-1s"), server.url("/good"), "--allow-private"]
    )
    out, err = capsys.readouterr()
    assert code == 0 and "1 added" in out
    [line] = [x for x in err.splitlines() if x.startswith("skipped")]
    assert line.startswith(f"skipped {server.url('/trickle-body-1s')}: took longer than 10 s")
    # The server saw the client leave after the 10 s (its ~300 bytes would take 300 s).
    deadline = time.monotonic() + 5
    while not any(p == "/trickle-body-1s" for p, _ in server.held):
        assert time.monotonic() < deadline, "the client is still reading"
        time.sleep(0.2)
    [held] = [s for p, s in server.held if p == "/trickle-body-1s"]
    assert 9 < held < 13


# -- the entry pages one sync fetches ---------------------------------------------------------


def test_a_big_feed_is_read_a_capped_number_of_pages_a_sync(
    server: Server, store: Store, ingestor: Ingestor
) -> None:
    add_feed(store, server.url("/many.xml"), "news", allow_private=True)
    before = server.count("/entry/")
    first = sync_feeds(store, ingestor, max_entry_pages=10)
    assert server.count("/entry/") - before == 10
    assert len(first.ingest.added) == 10 and first.results[0].left == 15
    assert "15 entries left for the next sync" in first.summary()

    second = sync_feeds(store, ingestor, max_entry_pages=10)
    assert second.results[0].status == "synced"  # not a 304: entries were left
    assert server.count("/entry/") - before == 20
    assert len(second.ingest.added) == 10 and second.results[0].left == 5

    third = sync_feeds(store, ingestor, max_entry_pages=10)
    assert len(third.ingest.added) == 5 and third.results[0].left == 0
    assert "left" not in third.summary()
    assert store.execute("SELECT count(*) FROM articles").fetchone()[0] == 25
    fourth = sync_feeds(store, ingestor, max_entry_pages=10)
    assert fourth.results[0].status == "not-modified"  # all read: now the ETag is kept


def test_a_slow_feed_stops_at_its_time_budget(
    server: Server, store: Store, ingestor: Ingestor
) -> None:
    add_feed(store, server.url("/slow-many.xml"), "news", allow_private=True)
    start = time.monotonic()
    report = sync_feeds(store, ingestor, entry_seconds=1.0)
    assert time.monotonic() - start < 2.5
    [result] = report.results
    assert 2 <= len(result.report.added) <= 5
    assert result.left == 10 - len(result.report.added)
    again = sync_feeds(store, ingestor, entry_seconds=1.0)
    assert again.results[0].left < result.left


def test_ingesting_a_big_feed_url_says_what_was_left(
    server: Server, store: Store, ingestor: Ingestor
) -> None:
    report = ingestor.ingest(
        fetch_articles(server.url("/many.xml"), allow_private=True, max_entry_pages=10)
    )
    assert len(report.added) == 10
    [(source, why)] = report.skipped
    assert source == server.url("/many.xml")
    assert why.startswith("15 entries left for the next run") and "\n" not in why


# -- --allow-private belongs to a feed ------------------------------------------------------


def test_allow_private_is_kept_with_its_feed_and_widens_no_other(
    server: Server, store: Store, ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = int(server.base.rsplit(":", 1)[1])
    route_public_names(monkeypatch, port)  # news.example: a public address, served locally
    add_feed(store, server.url("/intranet.xml"), "news", allow_private=True)
    add_feed(store, f"http://news.example:{port}/public.xml", "news", allow_private=False)
    assert {f.url: f.allow_private for f in list_feeds(store)} == {
        server.url("/intranet.xml"): True,
        f"http://news.example:{port}/public.xml": False,
    }

    report = sync_feeds(store, ingestor)
    assert not report.failed
    keys = sorted(r[0] for r in store.execute("SELECT key FROM articles"))
    assert keys == [server.url(f"/entry/intranet-{i}") for i in range(2)]
    refused = dict(report.ingest.skipped)
    assert set(refused) == {server.url(f"/secret/{i}") for i in range(2)}
    assert all("loopback" in why for why in refused.values())
    assert server.count("/secret/") == 0  # never contacted


def test_an_old_store_gets_the_allow_private_column(tmp_path: Path) -> None:
    path = tmp_path / "qabot.sqlite3"
    with sqlite3.connect(path) as db:  # the feeds table as stores before it had the column
        db.execute(
            "CREATE TABLE feeds (url TEXT NOT NULL, collection TEXT NOT NULL, title TEXT,"
            " etag TEXT, last_modified TEXT, last_synced TEXT, last_error TEXT,"
            " PRIMARY KEY (url, collection))"
        )
        db.execute("INSERT INTO feeds (url, collection) VALUES ('https://a.example/f', 'news')")
    store = Store(path, model="hashing-64", dim=64)
    try:
        [feed] = list_feeds(store)
    finally:
        store.close()
    assert feed.url == "https://a.example/f" and feed.allow_private is False
    Store(path, model="hashing-64", dim=64).close()  # opening again changes nothing


@pytest.mark.slow
def test_cli_feed_keeps_its_permission_and_sync_refuses_the_flag(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot.cli import main

    data = ["--data-dir", str(tmp_path)]
    assert main([*data, "feeds", "add", server.url("/intranet.xml"), "--allow-private"]) == 0
    capsys.readouterr()
    assert main([*data, "feeds", "list"]) == 0
    assert "private addresses allowed" in capsys.readouterr().out
    assert main([*data, "feeds", "sync"]) == 0
    assert "2 articles added" in capsys.readouterr().out

    assert main([*data, "feeds", "sync", "--allow-private"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "qabot feeds add URL --allow-private" in err
