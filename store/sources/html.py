"""An article from an HTML page: the main text by trafilatura, the page's metadata, and
`drop_header`, which drops the headline, bylines and dateline a page prints above its body.
"""

from __future__ import annotations

import difflib
import re
from typing import Any
from urllib.parse import urlsplit

from store.errors import FetchError
from store.models import RawArticle
from store.text.clean import is_furniture, parse_date
from store.text.dedupe import same_words, words

# Fewer words than this is a menu or a notice, not an article.
MIN_WORDS = 12


def html_to_article(html: str | bytes, url: str | None = None) -> RawArticle:
    """The article in an HTML page: main text only, paragraphs apart by a blank line.

    Title, publisher (site name), author, published date and canonical URL come from the
    page's metadata. `key` and `url` are the canonical URL, else `url`; for a file
    (`url=None`) without a canonical link both are left for the loader to set.
    Raises FetchError when the page holds no article text.
    """
    try:
        import trafilatura
    except ImportError as exc:  # e.g. lxml without its html-clean part
        raise FetchError(
            f"cannot extract articles from HTML ({' '.join(str(exc).split())}); "
            "run `pip install trafilatura lxml_html_clean`"
        ) from exc

    doc = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        include_links=False,
        include_images=False,
    )
    if doc is None:
        raise FetchError("no article text found; the page may need JavaScript or hold no article")
    title = clean_field(getattr(doc, "title", None))
    author = clean_field(getattr(doc, "author", None))
    publisher = clean_field(getattr(doc, "sitename", None))
    blocks = _body_blocks(getattr(doc, "body", None))
    if not blocks:
        blocks = [b for b in (getattr(doc, "text", None) or "").splitlines() if b.strip()]
    text = "\n\n".join(drop_header(blocks, title=title, names=(author, publisher)))
    if len(text.split()) < MIN_WORDS:
        raise FetchError("no article text found; the page may need JavaScript or hold no article")
    canonical = http_url(getattr(doc, "url", None)) or url
    if url and publisher == urlsplit(url).netloc and not publisher.replace(".", "").isalpha():
        publisher = None  # the extractor's fallback to "host:port" or an IP names no one
    return RawArticle(
        key=canonical or "",
        text=text,
        title=title,
        url=canonical,
        publisher=publisher,
        author=author,
        published=clean_field(getattr(doc, "date", None)),
        source=url,
        pre_cleaned=True,
    )


def _body_blocks(body: Any) -> list[str]:
    """Trafilatura's extracted tree as text blocks: one per paragraph, heading or list item."""
    if body is None:
        return []
    blocks: list[str] = []
    for element in body:
        if element.tag == "list":
            items = [element_text(item) for item in element if item.tag == "item"]
            blocks.extend(item for item in items if item)
        else:
            block = element_text(element)
            if block:
                blocks.append(block)
    return blocks


# -- the header above an article's body ---------------------------------------------------

# A byline: "By Mara Okonkwo", "Written by ...", "Posted by ...", "Author: ...".
_BYLINE = re.compile(r"^(?:by|written by|posted by|words by|author:)\s+\S", re.I)
# Words a byline or a dateline carries besides names and the date itself.
_HEADER_WORDS = frozenset(
    "by and staff reporter reporters correspondent correspondents editor writer the in at on "
    "published updated posted last modified am pm gmt utc et pt cet "
    "monday tuesday wednesday thursday friday saturday sunday".split()
)
# A header line is short; a longer block is prose whatever it starts with.
_HEADER_MAX_WORDS = 12
# A standfirst that repeats the headline carries at most this many words more than it.
_STANDFIRST_EXTRA_WORDS = 20


def drop_header(
    blocks: list[str], *, title: str | None, names: tuple[str | None, ...] = ()
) -> list[str]:
    """`blocks` without the header lines a page prints above its article's body.

    Pages put the headline (the title again), a standfirst repeating it, bylines ("By X",
    "X | Publisher"), the publisher's name and a dateline above the first paragraph. They
    are metadata, already read from the page's tags; left in the body they become its
    first sentences and get quoted as answers. Only leading blocks are dropped, up to the
    first that is none of these. `names` are the author and publisher.
    """
    title_words = words(title) if title else []
    name_words = {w for name in names if name for w in words(name)}
    for i, block in enumerate(blocks):
        if not _is_header_line(block, title_words, name_words):
            return blocks[i:]
    return []


def _is_header_line(block: str, title_words: list[str], name_words: set[str]) -> bool:
    tokens = words(block)
    if not tokens:
        return True  # punctuation or a symbol between header lines
    if title_words and _repeats_title(tokens, title_words):
        return True
    if len(tokens) > _HEADER_MAX_WORDS or _TERMINAL_PROSE.search(block):
        return False
    if all(t in name_words or t in _HEADER_WORDS for t in tokens):
        return True  # the author's or the publisher's name, alone or as "X | Publisher"
    if _BYLINE.match(block) or "|" in block:
        return True
    if parse_date(block):  # a dateline: a date, perhaps a weekday and a time
        return all(t.isdigit() or t in _HEADER_WORDS or _is_month(t) for t in tokens)
    return is_furniture(block)


# A block ending like a sentence ("... said.") is prose; "By J. Smith" ends on an initial.
_TERMINAL_PROSE = re.compile(r"\w{3,}[.!?][\"'”’»)\]]*$")


def _repeats_title(tokens: list[str], title_words: list[str]) -> bool:
    """The headline itself (case and punctuation aside, perhaps with the site's name), or
    a standfirst that carries nearly all of it word for word."""
    if tokens == title_words or same_words(tokens, title_words, 0.85):
        return True
    if len(tokens) < 3 or len(title_words) < 3:
        return False
    short, long = sorted((tokens, title_words), key=len)
    ends = (long[: len(short)], long[-len(short) :])
    if len(long) - len(short) <= 4 and short in ends:
        return True  # "Headline | Site" against "Headline", either way round
    if len(tokens) > len(title_words) + _STANDFIRST_EXTRA_WORDS or len(title_words) < 4:
        return False
    match = difflib.SequenceMatcher(None, tokens, title_words, autojunk=False)
    longest = match.find_longest_match(0, len(tokens), 0, len(title_words)).size
    return longest >= 0.8 * len(title_words)


def _is_month(token: str) -> bool:
    return len(token) >= 3 and any(m.startswith(token) for m in _MONTHS)


_MONTHS = (
    "january february march april may june july august september october november december"
).split()


def element_text(element: Any) -> str:
    """The text of an XML/HTML element with its whitespace runs collapsed to single spaces."""
    return " ".join("".join(element.itertext()).split())


def clean_field(value: str | None) -> str | None:
    """A metadata field with its whitespace runs collapsed; None when nothing is left."""
    value = " ".join(value.split()) if value else None
    return value or None


def http_url(value: str | None) -> str | None:
    """`value` when it is an http(s) URL, else None."""
    if value and urlsplit(value).scheme in ("http", "https"):
        return value
    return None
