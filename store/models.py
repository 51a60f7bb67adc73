"""The data the store produces. Frozen pydantic models; vectors never live in them."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, field_validator

# Limits on what an article's metadata may hold (the README's table of limits).
MAX_TITLE_CHARS = 300
MAX_FIELD_CHARS = 200  # publisher, author
MAX_URL_CHARS = 2048
# A sentence or passage is embedded under its article's title, cut to this many characters.
EMBED_TITLE_CHARS = 200

_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 and C1 controls and DEL, but tab, line feed and carriage return (line structure).
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# What a one-line field may not hold: every control, and the bidirectional overrides and
# isolates that make text display in another order than it is stored.
_LINE_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile("[\\s\u2028\u2029]+")
# Shown escaped when a name is printed: controls, bidi overrides, line and paragraph separators.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


def safe_text(value: str) -> str:
    """Text that SQLite and a terminal can take: lone surrogates (from a JSON escape such as
    "\\ud800", or a file name that is not UTF-8) become U+FFFD, and control characters but
    tab and line ends are removed."""
    return _TEXT_CONTROL.sub("", _SURROGATE.sub("\ufffd", value))


def one_line(value: str | None, limit: int) -> str | None:
    """A metadata field as one line of at most `limit` characters, cut at a word boundary;
    None when nothing is left."""
    if value is None:
        return None
    text = _SPACES.sub(" ", _LINE_CONTROL.sub("", safe_text(value))).strip()
    if len(text) > limit:
        cut = text.rfind(" ", 0, limit + 1)
        text = (text[:cut] if cut > limit // 2 else text[:limit]).rstrip()
    return text or None


def embed_title(title: str | None) -> str:
    """An article's title as it is embedded before each of its sentences and passages."""
    return (title or "")[:EMBED_TITLE_CHARS]


def embedded_text(title: str | None, text: str) -> str:
    """What the model embeds for a sentence or passage: its article's title (the topic: it
    says what "it" and "the city" are, +0.005 MRR on ReQA, see retriever/evaluate.py), cut
    as `embed_title` cuts it, a newline and the text. The vector's hash is of this string."""
    return f"{embed_title(title)}\n{text}"


def text_hash(text: str) -> bytes:
    """The key an embedded text's vector (and token vectors) are stored under."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def valid_url(value: str | None) -> str | None:
    """`value` if it is an absolute http(s) URL without spaces or control characters."""
    if value is None:
        return None
    url = value.strip()
    if (
        not url
        or len(url) > MAX_URL_CHARS
        or _SURROGATE.search(url)
        or any(c.isspace() or _UNPRINTABLE.match(c) for c in url)
    ):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1" and the like
        return None
    return url if parts.scheme.lower() in ("http", "https") and parts.hostname else None


def valid_date(value: str | None) -> str | None:
    """`value` as YYYY-MM-DD when it is (or starts with) a date, else None: free text such
    as a Markdown link is never kept as a publication date."""
    from store.text.clean import parse_date

    if value is None:
        return None
    text = one_line(value, 100)
    return parse_date(text) if text else None


def printable(name: str, *, controls: bool = True) -> str:
    """`name` (a file name, a URL) safe to print on one line: bytes that are not UTF-8 and
    lone surrogates shown as `\\xff`, and, with `controls`, newlines, escapes (ANSI colour
    codes) and other control characters shown as `\\n`, `\\x1b`, so that a file name can
    neither forge a line of the summary nor drive the terminal. JSON escapes controls itself:
    pass controls=False there."""
    try:
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that did not come from a file name
        shown = name.encode("utf-8", "backslashreplace").decode("utf-8")
    if controls:
        shown = _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], shown)
    return shown


class ArticleMeta(_Frozen):
    """An article's metadata, declared once: what a loader found, what is stored, what a
    listing shows. A stored article always has a title; a loader's may lack one."""

    title: str | None = None
    url: str | None = None
    publisher: str | None = None
    published: str | None = None  # ISO date (YYYY-MM-DD); anything else is dropped
    author: str | None = None
    source: str | None = None  # the file or URL it was read from, for display (printable)


class _StoredId(_Frozen):
    """What names a stored article version (first in a stored article's fields)."""

    id: str
    key: str
    collection: str


class RawArticle(ArticleMeta):
    """An article as a loader found it, before cleaning.

    `key` identifies the article across versions: its canonical URL when it has one, else
    the file it came from (plus the title for multi-article files). Ingesting a RawArticle
    whose key is stored with other text replaces that version.
    """

    key: str
    text: str
    guid: str | None = None  # a feed entry's id, when it came from a feed
    # True when `text` is already clean body text (HTML extraction, JSON); False for text
    # pasted from a page, whose first lines may hold the title, publisher, caption.
    pre_cleaned: bool = False

    # Validated here, where every source (files, JSON, web pages, feeds) enters: an invalid
    # field is dropped rather than the article refused.
    @field_validator("text", "key", "guid")
    @classmethod
    def _safe(cls, value: str | None) -> str | None:
        return None if value is None else safe_text(value)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str | None) -> str | None:
        return one_line(value, MAX_TITLE_CHARS)

    @field_validator("publisher", "author")
    @classmethod
    def _field(cls, value: str | None) -> str | None:
        return one_line(value, MAX_FIELD_CHARS)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return valid_url(value)

    @field_validator("published")
    @classmethod
    def _published(cls, value: str | None) -> str | None:
        return valid_date(value)

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | None) -> str | None:
        return None if value is None else printable(value)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with `update` applied, validated like a new article (pydantic's own
        model_copy skips validation, and loaders build their article with it)."""
        if not update:
            return super().model_copy(deep=deep)
        return self.model_validate({**self.model_dump(), **update})


# Stored articles list their id, key and collection, then the metadata (ArticleMeta's
# order), then their own fields: `qabot list --json` prints ArticleInfo in this order.
class Article(ArticleMeta, _StoredId):
    """A stored article: its metadata and its cleaned text, which sentences index into."""

    title: str
    text: str
    ingested_at: datetime


class ArticleInfo(ArticleMeta, _StoredId):
    """An article's metadata without its text, for listings and citations."""

    title: str
    ingested_at: datetime
    sentences: int = 0
    passages: int = 0


class SentenceSpan(_Frozen):
    """A sentence of an article being written: `article.text[start:end]`, in passage
    `passage`, embedded as `embedded` (see `embedded_text`)."""

    start: int
    end: int
    passage: int
    embedded: str


class PassageSpan(_Frozen):
    """A passage of an article being written: sentences `first` to `last` (inclusive),
    their text, and what is embedded for it."""

    first: int
    last: int
    text: str
    embedded: str


class PreparedArticle(ArticleMeta, _StoredId):
    """An article version cut into sentences and passages, everything `Store.put_article`
    writes in one transaction (the vectors travel beside it, never in it)."""

    title: str
    text: str
    guid: str | None
    sentences: tuple[SentenceSpan, ...]
    passages: tuple[PassageSpan, ...]


class Sentence(_Frozen):
    """A sentence of an article: `text == article.text[start:end]`."""

    article_id: str
    index: int
    start: int
    end: int
    text: str


class Passage(_Frozen):
    """A run of whole sentences `[first, last]` that fits the model's window."""

    article_id: str
    index: int
    first: int
    last: int
    text: str


class StoredSentence(_Frozen):
    """A sentence an answer of a conversation quoted, as the store keeps it: with its article
    id and start in the article's cleaned text (-1: not known), which together name it
    across re-ingests (row ids do not), its article's title and its score."""

    text: str
    article_id: str
    title: str = ""
    score: float = 0.0
    start: int = -1


class StoredTurn(_Frozen):
    """One turn of a conversation as the store keeps it (`Store.put_conversation`): the
    question, what it was understood as ('' when read as asked), the sentences the answer
    quoted, whether it declined, and when it was asked (ISO 8601, UTC)."""

    question: str
    understood: str = ""
    sentences: tuple[StoredSentence, ...] = ()
    abstained: bool = False
    asked_at: str
