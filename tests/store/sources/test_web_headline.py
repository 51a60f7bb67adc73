"""A web page's headline, standfirst, byline and dateline are metadata, not answers.

The page is built at run time from the shared sample article (title in `<h1>` and in the
metadata, then the header lines news sites print above the body) and served locally.
"""

from __future__ import annotations

import html
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from store.db import Store
from store.errors import FetchError
from store.ingest import Ingestor
from store.models import RawArticle
from store.sources.html import html_to_article
from store.sources.read import fetch_articles
from tests.conftest import SAMPLE_ARTICLE, need_shared
from tests.doubles import HashingEmbedder
from tests.store.local_server import Server, serve

SIDI_BARRANI = "The landing of Russian elite units armed with attack drones was detected on Tuesday"


def sample() -> tuple[str, str, str, list[str]]:
    """The sample article's title, publisher line, photo caption and body paragraphs."""
    lines = [line.strip() for line in need_shared(SAMPLE_ARTICLE).read_text().splitlines()]
    title, publisher, caption, *body = [line for line in lines if line]
    return title, publisher, caption, body


def article_page(base: str) -> bytes:
    """The sample as a news site prints it: headline, publisher, bylines, a standfirst
    repeating the headline, a dateline and a captioned photo above the body."""
    title, publisher, caption, body = sample()
    t = html.escape(title)
    paragraphs = "\n".join(f"<p>{html.escape(p)}</p>" for p in body)
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8">
<title>{t} | {publisher}</title>
<meta property="og:title" content="{t}">
<meta property="og:site_name" content="{publisher}">
<meta name="author" content="DEBKAfile Reporters">
<meta property="article:published_time" content="2017-03-14T10:02:00+00:00">
<link rel="canonical" href="{base}/russian-units"></head><body>
<nav><a href="/">Home</a> <a href="/news">News</a></nav>
<article><h1>{t}</h1>
<p>{publisher}</p>
<p>By DEBKAfile Reporters</p>
<p>DEBKAfile Reporters | {publisher}</p>
<p>{t}, US military sources say</p>
<p>Tuesday, March 14, 2017 10:02 AM</p>
<figure><img src="/ops.jpg" alt=""><figcaption>{html.escape(caption)}</figcaption></figure>
{paragraphs}</article>
<footer>Copyright 2017 {publisher}. All rights reserved.</footer></body></html>""".encode()


def feed(base: str) -> bytes:
    """An RSS feed with one summary-only entry linking to the page."""
    title, _, _, _ = sample()
    return f"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>DEBKAfile</title><link>{base}/</link>
<description>News</description>
<item><title>{html.escape(title)}</title><link>{base}/russian-units</link>
<guid isPermaLink="false">debka-2017-03-14-russian-units</guid>
<description>Russian troops at Sidi Barrani.</description>
<pubDate>Tue, 14 Mar 2017 10:02:00 +0000</pubDate></item>
</channel></rss>""".encode()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    routes = {
        "/russian-units": lambda h: h.send(article_page(h.base)),
        "/feed.xml": lambda h: h.send(feed(h.base), "application/rss+xml"),
    }
    with serve(routes) as running:
        yield running


def header_lines() -> list[str]:
    title, publisher, caption, _ = sample()
    return [title, "By DEBKAfile Reporters", f"DEBKAfile Reporters | {publisher}", caption]


def check_body(text: str) -> None:
    first = text.split("\n\n")[0]
    assert first.startswith(SIDI_BARRANI), first
    title = sample()[0]
    for line in header_lines():
        assert line not in text.replace(f"{title} |", "")  # no header line left in the body
    assert "March 14, 2017 10:02" not in text


def test_page_body_starts_with_the_article_not_its_header(server: Server) -> None:
    [article] = list(fetch_articles(server.url("/russian-units"), allow_private=True))
    assert isinstance(article, RawArticle)
    assert article.title == sample()[0]
    assert article.author == "DEBKAfile Reporters" and article.publisher == "DEBKA"
    assert article.published == "2017-03-14"
    check_body(article.text)


def test_feed_entry_page_body_starts_with_the_article(server: Server) -> None:
    [article] = list(fetch_articles(server.url("/feed.xml"), allow_private=True))
    assert isinstance(article, RawArticle)
    assert article.guid == "debka-2017-03-14-russian-units"
    check_body(article.text)


def test_stored_sentences_hold_no_headline(server: Server, tmp_path: Path) -> None:
    store = Store(tmp_path / "qabot.sqlite3", model="hashing-64", dim=64)
    try:
        report = Ingestor(store, HashingEmbedder()).ingest(
            fetch_articles(server.url("/russian-units"), allow_private=True)
        )
        assert len(report.added) == 1 and not report.skipped
        sentences = [r[0] for r in store.execute("SELECT text FROM sentences ORDER BY idx")]
    finally:
        store.close()
    assert sentences[0].startswith(SIDI_BARRANI)
    title = sample()[0]
    assert not any(title.lower() in s.lower() for s in sentences)


def test_a_lede_that_shares_words_with_the_headline_is_kept() -> None:
    lede = (
        "Russian elite units landed on the Egypt-Libya border at Sidi Barrani on Tuesday, "
        "US military sources said, after their Libyan ally lost two oil terminals."
    )
    page = f"""<html><head><title>Russian elite units land on Egypt-Libya border</title></head>
<body><article><h1>Russian elite units land on Egypt-Libya border</h1>
<p>{lede}</p><p>By the evening the units had taken up position 95 km from the border,
officials in Cairo said, and declined to say how long they would stay.</p>
</article></body></html>"""
    article = html_to_article(page, url="https://news.example/russian-units")
    assert article.text.split("\n\n")[0] == lede
    assert "By the evening the units" in article.text


def answer_json(data: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    from bot.cli import main

    capsys.readouterr()
    question = "Where did the Russian elite units land?"
    assert main(["--data-dir", str(data), "ask", "--json", question]) == 0
    answer: dict[str, object] = json.loads(capsys.readouterr().out)
    return answer


def stored(data: Path) -> list[str]:
    with sqlite3.connect(data / "qabot.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT text FROM sentences")]


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/russian-units", "/feed.xml"])
def test_cli_answer_quotes_the_sidi_barrani_sentence_first(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    from bot.cli import main

    data = tmp_path / "data"
    code = main(["--data-dir", str(data), "ingest", server.url(path), "--allow-private"])
    assert code == 0, capsys.readouterr().err
    answer = answer_json(data, capsys)
    assert answer["abstained"] is False
    answers = answer["answers"]
    assert isinstance(answers, list)
    assert answers[0]["text"].startswith(SIDI_BARRANI), answers[0]["text"]
    title = sample()[0]
    assert all(a["text"] != title for a in answers)
    assert title not in stored(data)
    assert answers[0]["article"]["title"] == title


def test_a_page_of_header_lines_only_holds_no_article() -> None:
    page = """<html><head><title>Russian elite units land on Egypt-Libya border</title>
<meta property="og:site_name" content="DEBKA"></head><body><article>
<h1>Russian elite units land on Egypt-Libya border</h1><p>By DEBKAfile Reporters</p>
<p>Tuesday, March 14, 2017 10:02 AM</p><p>DEBKAfile Reporters | DEBKA</p>
</article></body></html>"""
    with pytest.raises(FetchError, match="no article text"):
        html_to_article(page, url="https://news.example/russian-units")
