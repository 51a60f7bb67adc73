"""Reading any source of articles: a file, a folder, or a URL (a page or a feed).

`read_source` is the one road in for `qabot ingest` and Discord's /ingest; the feed sync
(store.feeds) asks its feeds conditionally and reads their entries with
store.sources.feeds directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from store.errors import FetchError, SkipSource
from store.models import RawArticle
from store.sources.feeds import ENTRY_SECONDS, MAX_ENTRY_PAGES, EntryBudget, feed_articles, is_feed
from store.sources.files import find_files, load_file
from store.sources.html import html_to_article
from store.sources.http import DOWNLOAD_SECONDS, UrlError, fetch


def is_url(text: str) -> bool:
    """Whether `text` (a command-line argument, say) names a web address, not a file."""
    return text.startswith(("http://", "https://"))


def read_source(
    source: str | Path,
    *,
    allow_private: bool,
    known: Callable[[str], bool] | None = None,
) -> Iterator[RawArticle | SkipSource]:
    """The articles in `source`, or why a part of it is skipped, in order.

    A Path is a file, or a folder searched recursively (see find_files), each file read by
    load_file. A str is a URL, never a path (a URL typed into Discord must not name a file
    on the bot's machine): a page, or a feed whose entries not yet `known` are read (see
    fetch_articles); `allow_private` lets it be on a private or loopback address. One bad
    part never stops the rest: it is yielded as a SkipSource with its reason.
    """
    if isinstance(source, str):
        yield from fetch_articles(source, allow_private=allow_private, known=known)
        return
    for found in find_files(source):
        if isinstance(found, SkipSource):
            yield found
        else:
            yield from load_file(found)


def fetch_articles(
    url: str,
    *,
    allow_private: bool,
    known: Callable[[str], bool] | None = None,
    timeout: float = DOWNLOAD_SECONDS,
    max_entry_pages: int = MAX_ENTRY_PAGES,
    entry_seconds: float = ENTRY_SECONDS,
) -> Iterator[RawArticle | SkipSource]:
    """The article at `url`, or the entries of the feed at `url` (judged by content).

    `known(guid_or_link)` says which feed entries are stored already; they are not fetched
    again. A URL or entry that fails is yielded as SkipSource and the rest go on. Each
    download takes at most `timeout` seconds; a feed's entries are read within
    `max_entry_pages` and `entry_seconds` (see EntryBudget), and the entries left are
    reported as one SkipSource for the feed, to be read by the next run.
    """
    try:
        response = fetch(url, allow_private=allow_private, timeout=timeout)
    except UrlError as exc:
        yield SkipSource(url, exc.reason)
        return
    except FetchError as exc:
        yield SkipSource(url, str(exc))
        return
    if is_feed(response.body):
        budget = EntryBudget(pages=max_entry_pages, seconds=entry_seconds, timeout=timeout)
        yield from feed_articles(response, allow_private=allow_private, known=known, budget=budget)
        if budget.left:
            yield SkipSource(
                url, f"{budget.describe_left('run')}; ingest the feed again to read them"
            )
        return
    try:
        article = html_to_article(response.body, url=response.url)
    except FetchError as exc:
        yield SkipSource(url, str(exc))
        return
    yield article.model_copy(update={"source": url})
