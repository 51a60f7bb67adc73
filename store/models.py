"""The data the store produces. Frozen pydantic models; vectors never live in them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class RawArticle(_Frozen):
    """An article as a loader found it, before cleaning.

    `key` identifies the article across versions: its canonical URL when it has one, else
    the file it came from (plus the title for multi-article files). Ingesting a RawArticle
    whose key is stored with other text replaces that version.
    """

    key: str
    text: str
    title: str | None = None
    url: str | None = None
    publisher: str | None = None
    published: str | None = None  # ISO date (YYYY-MM-DD) when known, else as written
    author: str | None = None
    source: str | None = None  # the file or URL it was read from, for display
    guid: str | None = None  # a feed entry's id, when it came from a feed
    # True when `text` is already clean body text (HTML extraction, JSON); False for text
    # pasted from a page, whose first lines may hold the title, publisher, caption.
    pre_cleaned: bool = False


class Article(_Frozen):
    """A stored article: its metadata and its cleaned text, which sentences index into."""

    id: str
    key: str
    collection: str
    title: str
    text: str
    url: str | None = None
    publisher: str | None = None
    published: str | None = None
    author: str | None = None
    source: str | None = None
    ingested_at: datetime


class ArticleInfo(_Frozen):
    """An article's metadata without its text, for listings and citations."""

    id: str
    key: str
    collection: str
    title: str
    url: str | None = None
    publisher: str | None = None
    published: str | None = None
    author: str | None = None
    source: str | None = None
    ingested_at: datetime
    sentences: int = 0
    passages: int = 0


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
