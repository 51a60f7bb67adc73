"""The store of truth as a seam: what the layers above need of it, as Protocols.

`store.db.Store` (SQLite, one file) is the first implementation. A store on a database server
meets the same contract: each article written whole or not at all, a generation that moves
with every change searches can see, the model recorded and enforced, migrations numbered.

`store.postgres.PostgresStore` (QABOT_DATABASE_URL) is the second. Beside the articles, the
store keeps tables no index reads (feeds, the answers shown and their votes, conversations):
named methods below, whose writes leave the generation as it is; a new such table gets
methods of its own here, on both stores. Still spoken in SQLite's own SQL, outside this
contract: the benchmark's synthetic stores (`bot/scale.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import numpy as np

from store.models import ArticleInfo, Passage, PreparedArticle, Sentence, StoredTurn

# rowid, article id, collection, title, text, index in the article, vector bytes, span (a
# sentence's start and end offsets, a passage's first and last sentence), a sentence's word
# piece ids and int8 token vectors (None for passages and sentences stored without them).
UnitRow = tuple[int, str, str, str, str, int, bytes, int, int, bytes | None, bytes | None]
# id, collection, title, publisher, url, published, source
IndexArticle = tuple[str, str, str, str | None, str | None, str | None, str | None]
TokenRows = dict[bytes, tuple[np.ndarray, np.ndarray]]  # text hash -> (piece ids, int8 vectors)
# url, collection, title, etag, last_modified, last_synced, last_error, allow_private
FeedRow = tuple[str, str, str | None, str | None, str | None, str | None, str | None, bool]
# answer id, question, quoted sentences, their article ids, user id, vote (+1/-1), guild id
VoteRow = tuple[int, str, list[str], list[str], str, int, str | None]


class StoreReads(Protocol):
    """What building the derived indexes reads: a store, or one moment of it (`snapshot`)."""

    model: str
    dim: int

    @property
    def generation(self) -> int:
        """Counts committed changes; derived indexes record the one they were built from."""
        ...

    def token_projection(self) -> np.ndarray | None:
        """The (dim, k) projection of the store's token vectors, None until the first."""
        ...

    def unit_count(self, table: str) -> int:
        """How many sentences or passages (`table`) are stored."""
        ...

    def iter_units(self, table: str) -> Iterator[UnitRow]:
        """Every sentence or passage, in article id order, then index."""
        ...

    def index_articles(self) -> list[IndexArticle]:
        """What the indexes keep of every article, in id order."""
        ...

    def passage_spans(self) -> list[tuple[str, int, int, int]]:
        """(article id, passage index, first sentence, last sentence) in article id order."""
        ...


class Store(StoreReads, Protocol):
    """The store of truth: articles, their sentences and passages, their vectors."""

    def snapshot(self) -> AbstractContextManager[StoreReads]:
        """The store as of one moment, for reads that must agree with each other."""
        ...

    def close(self) -> None: ...

    # -- writing articles (the ingest) ----------------------------------------------------

    def article_state(self, collection: str, key: str) -> str | None:
        """The id of the stored version of the article with this key, if any."""
        ...

    def known_vectors(self, hashes: Iterable[bytes]) -> set[bytes]: ...

    def known_tokens(self, hashes: Iterable[bytes]) -> set[bytes]: ...

    def stage(self, vectors: dict[bytes, np.ndarray], tokens: TokenRows | None = None) -> None:
        """Hold vectors for articles not written yet, outside the store's transactions."""
        ...

    def clear_staged(self) -> None: ...

    def put_article(self, article: PreparedArticle) -> None:
        """Write one article whole (replacing its older version), its vectors staged."""
        ...

    def set_token_projection(self, matrix: np.ndarray) -> np.ndarray:
        """Record the projection unless the store has one already; the one in force."""
        ...

    def forget(self, ref: str, collection: str | None = None) -> list[ArticleInfo]: ...

    # -- migrations (store/migrations/) ---------------------------------------------------

    def meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def migrations_done(self) -> set[int]: ...

    def record_migration(self, number: int) -> None: ...

    def sentences_without_tokens(
        self, *, after: bytes = b"", limit: int = 2**62
    ) -> list[tuple[bytes, str, str]]: ...

    def put_tokens(self, tokens: TokenRows) -> None: ...

    # -- reading articles (the CLI, Discord, the evaluation) ------------------------------

    def find(self, ref: str, collection: str | None = None) -> list[ArticleInfo]: ...

    def articles(
        self, *, collection: str | None = None, limit: int | None = None, offset: int = 0
    ) -> list[ArticleInfo]: ...

    def article_text(self, article_id: str) -> str: ...

    def sentences_of(self, article_id: str) -> list[Sentence]: ...

    def sentence_spans(self, article_id: str) -> list[tuple[int, int, int]]:
        """(sentence row id, start, end) of an article's sentences, in order."""
        ...

    def passages_of(self, article_id: str) -> list[Passage]: ...

    def is_known(self, ref: str) -> bool:
        """Whether a feed entry's GUID or link is stored already (in any collection)."""
        ...

    def stats(self) -> dict[str, object]: ...

    # -- feeds (store/feeds.py): the generation does not move -----------------------------

    def feeds(self, collection: str | None = None) -> list[FeedRow]:
        """The subscribed feeds (of one collection, or all), by collection then URL."""
        ...

    def put_feed(self, url: str, collection: str, title: str | None, allow_private: bool) -> None:
        """Subscribe, or refresh the title and permission of a subscription."""
        ...

    def remove_feed(self, url: str, collection: str) -> None: ...

    def record_feed_sync(
        self,
        url: str,
        collection: str,
        *,
        etag: str | None,
        last_modified: str | None,
        title: str | None,
        synced: str,
        error: str | None,
    ) -> None:
        """What the last sync of a feed found (`synced`: its ISO time)."""
        ...

    # -- answers shown in Discord and the votes on them (bot/votes.py) ---------------------

    def record_answer(
        self,
        question: str,
        sentences: Sequence[str],
        article_ids: Sequence[str],
        guild_id: str | None,
        created_at: str,
    ) -> int:
        """Keep an answer that was shown; its id."""
        ...

    def record_vote(self, answer_id: int, user_id: str, vote: int, created_at: str) -> None:
        """One vote per user per answer, the last one kept; NotFoundError without the answer."""
        ...

    def votes(self) -> list[VoteRow]:
        """Every vote with its answer, oldest first."""
        ...

    # -- conversations (bot/conversation_log.py): the generation does not move ------------

    def conversation(self, key: str) -> list[StoredTurn]:
        """The turns kept under `key` (a front end's: "discord:thread:<id>", "chat:<name>"),
        oldest first; [] when none are."""
        ...

    def put_conversation(self, keys: Sequence[str], turns: Sequence[StoredTurn]) -> None:
        """Keep `turns` (oldest first) as the conversation under each of `keys`, replacing
        what each held (no turns: forget them), in one small transaction of its own. The
        caller keeps a conversation short (bot/conversation_log.py: MAX_TURNS)."""
        ...

    def prune_conversations(self, before: str) -> int:
        """Forget the conversations whose last turn was asked before `before` (an ISO 8601
        time, UTC, as `StoredTurn.asked_at`); how many were."""
        ...
