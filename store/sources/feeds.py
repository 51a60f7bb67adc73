"""RSS and Atom feeds: telling a feed from a page, parsing it, and reading its entries
(the entry's own text when it carries the whole article, else the page it links to)
within a budget of pages and seconds.
"""

from __future__ import annotations

import calendar
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

from store.errors import FetchError, SkipSource
from store.models import RawArticle
from store.sources.html import clean_field, drop_header, element_text, html_to_article, http_url
from store.sources.http import DOWNLOAD_SECONDS, Response, UrlError, fetch

log = logging.getLogger(__name__)

# How much of a feed one read fetches: at most this many entry pages, within this many
# seconds (wall clock, from the first entry, embedding included). The entries left are not
# stored, so the next sync (or ingest of the feed) picks them up.
MAX_ENTRY_PAGES = 50
ENTRY_SECONDS = 60.0
# A feed entry whose own content has at least this much text carries the whole article;
# shorter content is a teaser and the page behind the entry's link is read instead.
FULL_CONTENT_CHARS = 1500


_ROOT = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_SKIP_PROLOG = re.compile(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", re.S | re.I)


def is_feed(body: bytes) -> bool:
    """Whether `body` is an RSS or Atom feed, judged by its XML root element (`rss`,
    `feed`, or RDF for RSS 1.0), whatever the URL or content type says."""
    head = body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16: rare; decode to look
        head = head.decode("utf-16", errors="ignore").encode("utf-8")
    head = _SKIP_PROLOG.sub(b"", head).lstrip()
    match = _ROOT.match(head)
    if not match:
        return False
    name = match.group(1).split(b":")[-1].lower()
    return name in (b"rss", b"feed", b"rdf")


def parse_feed(body: bytes) -> Any:
    """The feed parsed by feedparser; FetchError when it is not a feed feedparser can read."""
    import feedparser

    parsed = feedparser.parse(body)
    if not parsed.get("version") and not parsed.entries:
        problem = parsed.get("bozo_exception")
        raise FetchError(f"not a readable RSS or Atom feed ({problem or 'unknown format'})")
    return parsed


def feed_title(feed: bytes | Any) -> str | None:
    """A feed's own title, when it has one; `feed` is its body or what parse_feed made of it."""
    parsed = parse_feed(feed) if isinstance(feed, bytes) else feed
    return clean_field(parsed.feed.get("title"))


@dataclass
class EntryBudget:
    """How much of one feed a read may fetch: at most `pages` entry pages, each download
    within `timeout`, and no entry started after `seconds` (wall clock from the first
    entry, the caller's embedding included). After the read, `left` counts the entries not
    read because the budget ran out: they are not stored, so the next read takes them up."""

    pages: int = MAX_ENTRY_PAGES
    seconds: float = ENTRY_SECONDS
    timeout: float = DOWNLOAD_SECONDS
    left: int = 0
    fetched: int = 0

    def describe_left(self, next_what: str) -> str:
        """'N entries left for the next sync' and which limit left them."""
        limit = (
            f"{self.pages} entry pages"
            if self.fetched >= self.pages
            else f"{self.seconds:g} s of reading"
        )
        entries = "entry" if self.left == 1 else "entries"
        return f"{self.left:,} {entries} left for the next {next_what} (at most {limit} a feed)"


def feed_articles(
    response: Response,
    *,
    allow_private: bool,
    known: Callable[[str], bool] | None = None,
    budget: EntryBudget | None = None,
    parsed: Any = None,
) -> Iterator[RawArticle | SkipSource]:
    """The entries of a fetched feed not yet `known`, as articles or SkipSources, within
    `budget` (the default limits when None); `budget.left` then says how many were left.
    `parsed` is the response's body as parse_feed read it, when the caller has it already
    (a big feed takes seconds to parse)."""
    budget = budget if budget is not None else EntryBudget()
    if parsed is None:
        try:
            parsed = parse_feed(response.body)
        except FetchError as exc:
            yield SkipSource(response.url, str(exc))
            return
    publisher = clean_field(parsed.feed.get("title"))
    stop = time.monotonic() + budget.seconds
    for entry in parsed.entries:
        link = http_url(
            urljoin(response.url, entry.get("link") or "") if entry.get("link") else None
        )
        guid = entry.get("id") or link
        refs = [r for r in (guid, link) if r]
        if not refs:
            yield SkipSource(response.url, "a feed entry with neither a link nor an id")
            continue
        if known is not None and any(known(ref) for ref in refs):
            continue
        if time.monotonic() >= stop:
            budget.left += 1
            continue
        try:
            meta, text, full = _entry_parts(entry, publisher)
            if full or not link:
                if not text:
                    raise FetchError("the entry has no text and no link to its page")
                yield RawArticle(
                    key=link or guid or "",
                    text=text,
                    url=link,
                    source=link or guid,
                    guid=guid,
                    pre_cleaned=True,
                    **meta,
                )
                continue
            if budget.fetched >= budget.pages:
                budget.left += 1
                continue
            budget.fetched += 1
            yield _page_article(
                link, guid, meta, allow_private=allow_private, timeout=budget.timeout
            )
        except UrlError as exc:
            yield SkipSource(link or refs[0], exc.reason)
        except FetchError as exc:
            yield SkipSource(link or refs[0], str(exc))
        except Exception as exc:  # one odd entry must not stop the feed
            log.exception("feed entry %s failed", link or guid)
            yield SkipSource(link or refs[0], f"could not read this entry ({exc})")


def _entry_parts(entry: Any, publisher: str | None) -> tuple[dict[str, str | None], str, bool]:
    """A feed entry's metadata, its own text, and whether that text is the whole article
    (else it is a teaser, and the page behind the entry's link is read instead)."""
    title = clean_field(entry.get("title"))
    author = clean_field(entry.get("author"))
    names = (author, publisher)
    summary = _fragment_text(entry.get("summary") or "", title=title, names=names)
    contents = [c.get("value") or "" for c in entry.get("content") or []]
    content = max(
        (_fragment_text(c, title=title, names=names) for c in contents), key=len, default=""
    )
    full = len(content) >= FULL_CONTENT_CHARS and len(content) >= len(summary)
    meta = {
        "title": title,
        "author": author,
        "publisher": publisher,
        "published": _entry_date(entry),
    }
    return meta, content or summary, full


def _page_article(
    link: str, guid: str | None, meta: dict[str, str | None], *, allow_private: bool, timeout: float
) -> RawArticle:
    """The page behind a feed entry, with the entry's metadata where the page has none."""
    response = fetch(link, allow_private=allow_private, timeout=timeout)
    page = html_to_article(response.body, url=response.url)
    return page.model_copy(
        update={
            "title": page.title or meta["title"],
            "publisher": page.publisher or meta["publisher"],
            "author": page.author or meta["author"],
            "published": page.published or meta["published"],
            "source": link,
            "guid": guid,
        }
    )


def _entry_date(entry: Any) -> str | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if parsed:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC).date().isoformat()
    return clean_field(entry.get("published") or entry.get("updated"))


_BLOCK_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "dd", "dt"}


def _fragment_text(
    html: str, *, title: str | None = None, names: tuple[str | None, ...] = ()
) -> str:
    """Text of an HTML fragment from a feed, one block per paragraph, without the header
    lines (headline, byline, dateline) above its first paragraph."""
    if not html.strip():
        return ""
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return " ".join(html.split())
    etree.strip_elements(root, "script", "style", with_tail=False)
    blocks = [
        element_text(el)
        for el in root.iter()
        if isinstance(el.tag, str)
        and el.tag in _BLOCK_TAGS
        and not any(a.tag in _BLOCK_TAGS for a in el.iterancestors())
    ]
    blocks = [b for b in blocks if b] or [element_text(root)]
    return "\n\n".join(drop_header(blocks, title=title, names=names))
