"""The ingest pipeline: raw articles -> clean -> sentences -> passages -> vectors -> store.

Articles are prepared in chunks so the model embeds full batches, then each article is
written in its own transaction. Only texts the store has no vector for are embedded.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

from store.embedding import Embedder
from store.errors import SkipSource
from store.indexes.tokens import Encoded, fit_projection, quantize
from store.migrations import pending_backfills
from store.models import (
    MAX_FIELD_CHARS,
    MAX_TITLE_CHARS,
    PreparedArticle,
    RawArticle,
    embed_title,
    one_line,
    text_hash,
)
from store.seams import Store
from store.text.clean import clean_text
from store.text.passages import pack

log = logging.getLogger(__name__)

DEFAULT_COLLECTION = "default"
_CHUNK_TEXTS = 512  # texts gathered before embedding: full batches, bounded memory
# Units of a backfill (store/migrations/) done per ingest: sentences of an older store given
# token vectors, ~4 min here, so that a large store is upgraded over several ingests rather
# than holding one (or the bot's writes) for hours.
_UPGRADE_MAX = 20 * _CHUNK_TEXTS


@dataclass
class IngestReport:
    """What an ingest did, for the summary line and `--json`."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sentences: int = 0
    passages: int = 0
    embedded: int = 0  # texts the model actually embedded (new text only)
    # Units of a backfill this ingest did: sentences stored before token vectors were kept,
    # given them.
    upgraded: int = 0

    def merge(self, other: IngestReport) -> None:
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.skipped += other.skipped
        self.sentences += other.sentences
        self.passages += other.passages
        self.embedded += other.embedded
        self.upgraded += other.upgraded


@dataclass
class _Prepared:
    raw: RawArticle
    article: PreparedArticle
    texts: list[str]  # every embedded text (sentences, then passages)
    # Word pieces of the title each sentence is embedded under, which its token vectors
    # leave out: they would match a question that restates the headline in every sentence.
    title_pieces: int = 0


def article_id(collection: str, key: str, title: str, text: str) -> str:
    """Stable id: the same article content under the same key always gets the same id."""
    digest = hashlib.sha256("\x1f".join((collection, key, title, text)).encode("utf-8"))
    return digest.hexdigest()[:16]


class Ingestor:
    """Turns RawArticles into stored articles with one embedder and one store."""

    def __init__(self, store: Store, embedder: Embedder, *, batch_size: int = 64) -> None:
        self.store = store
        self.embedder = embedder
        self.batch_size = batch_size

    def ingest(
        self,
        items: Iterable[RawArticle | SkipSource],
        *,
        collection: str = DEFAULT_COLLECTION,
        progress: Callable[[int], None] | None = None,
    ) -> IngestReport:
        """Ingest every item; `progress(n)` is called as n more items are done."""
        report = IngestReport()
        for backfill in pending_backfills(self.store.migrations_done()):
            units, finished = backfill.run(self, _UPGRADE_MAX)
            report.embedded += units
            report.upgraded += units
            if finished:
                self.store.record_migration(backfill.number)
        pending: list[_Prepared] = []
        pending_texts = 0
        for item in items:
            if isinstance(item, SkipSource):
                report.skipped.append((item.source, item.reason))
                if progress:
                    progress(1)
                continue
            try:
                prepared = self._prepare(item, collection)
            except SkipSource as skip:
                report.skipped.append((skip.source, skip.reason))
                if progress:
                    progress(1)
                continue
            except Exception as exc:  # one article's bug must not cost the batch
                log.debug("preparing %s failed", item.source or item.key, exc_info=True)
                report.skipped.append(
                    (
                        item.source or item.key,
                        f"could not be prepared ({type(exc).__name__}: {str(exc)[:200]}); "
                        "run qabot -v ingest for the details, and please report it",
                    )
                )
                if progress:
                    progress(1)
                continue
            if prepared is None:
                report.unchanged.append(item.title or item.key)
                if progress:
                    progress(1)
                continue
            pending.append(prepared)
            pending_texts += len(prepared.texts)
            if pending_texts >= _CHUNK_TEXTS:
                self._flush(pending, report, progress)
                pending, pending_texts = [], 0
        self._flush(pending, report, progress)
        return report

    def _prepare(self, raw: RawArticle, collection: str) -> _Prepared | None:
        cleaned = clean_text(
            raw.text, title=raw.title, header=not raw.pre_cleaned, published=raw.published
        )
        # What cleaning read off the text's first lines is held to the limits RawArticle
        # sets for a loader's metadata (one line, 300 characters for a title).
        title = (
            one_line(cleaned.title, MAX_TITLE_CHARS)
            or raw.title
            or one_line(_title_from_key(raw.key), MAX_TITLE_CHARS)
            or raw.key[:MAX_TITLE_CHARS]
        )
        if not cleaned.sentences:
            raise SkipSource(raw.source or raw.key, "no article text left after cleaning")
        aid = article_id(collection, raw.key, title, cleaned.text)
        if self.store.article_state(collection, raw.key) == aid:
            return None
        title_pieces = self.title_pieces([embed_title(title)])[0]
        sentences, passages = pack(
            cleaned.text,
            cleaned.paragraphs,
            cleaned.sentences,
            title,
            budget=self.embedder.max_tokens - (title_pieces + 1),  # the title and a separator
            count_tokens=self.embedder.count_tokens,
        )
        article = PreparedArticle(
            id=aid,
            key=raw.key,
            collection=collection,
            title=title,
            text=cleaned.text,
            url=raw.url,
            publisher=raw.publisher or one_line(cleaned.publisher, MAX_FIELD_CHARS),
            published=raw.published or cleaned.published,
            author=raw.author or one_line(cleaned.author, MAX_FIELD_CHARS),
            source=raw.source,
            guid=raw.guid,
            sentences=tuple(sentences),
            passages=tuple(passages),
        )
        texts = [s.embedded for s in sentences] + [p.embedded for p in passages]
        return _Prepared(raw=raw, article=article, texts=texts, title_pieces=title_pieces)

    def _flush(
        self, pending: list[_Prepared], report: IngestReport, progress: Callable[[int], None] | None
    ) -> None:
        if not pending:
            return
        sentences: dict[bytes, str] = {}
        passages: dict[bytes, str] = {}
        title_pieces: dict[bytes, int] = {}
        for prepared in pending:
            for sentence in prepared.article.sentences:
                t = sentence.embedded
                sentences.setdefault(text_hash(t), t)
                title_pieces.setdefault(text_hash(t), prepared.title_pieces)
            for passage in prepared.article.passages:
                passages.setdefault(text_hash(passage.embedded), passage.embedded)
        known = self.store.known_vectors([*sentences, *passages])
        # A sentence is embedded again when it has a vector but no token vectors (stored
        # before they were kept): the pass that embeds it is what yields them.
        have_tokens = self.store.known_tokens(sentences)
        todo_s = [(h, t) for h, t in sentences.items() if h not in have_tokens]
        todo_p = [(h, t) for h, t in passages.items() if h not in known and h not in sentences]
        try:
            # Embedded _CHUNK_TEXTS at a time, each chunk's vectors staged on disk before the
            # next: the model's token vectors (~50 KB a sentence as floats) and the results are
            # bounded by a chunk, not by the article (a 5 MB one held 6 GB). The model sorts
            # each chunk by length itself, for batches with little padding.
            for lo in range(0, len(todo_s), _CHUNK_TEXTS):
                chunk = todo_s[lo : lo + _CHUNK_TEXTS]
                encoded = self.embedder.encode_sentences([t for _, t in chunk], self.batch_size)
                hashes_s = [h for h, _ in chunk]
                tokens = self.token_rows(hashes_s, encoded, [title_pieces[h] for h in hashes_s])
                self.store.stage(
                    {h: encoded.vectors[i] for i, h in enumerate(hashes_s) if h not in known},
                    tokens,
                )
                del encoded, tokens
            for lo in range(0, len(todo_p), _CHUNK_TEXTS):
                chunk = todo_p[lo : lo + _CHUNK_TEXTS]
                matrix = self.embedder.encode_documents(
                    [t for _, t in chunk], batch_size=self.batch_size
                )
                self.store.stage({h: matrix[i] for i, (h, _) in enumerate(chunk)})
            report.embedded += len(todo_s) + len(todo_p)
            for prepared in pending:
                article = prepared.article
                previous = self.store.article_state(article.collection, article.key)
                self.store.put_article(article)  # its vectors are staged
                (report.updated if previous else report.added).append(article.title)
                report.sentences += len(article.sentences)
                report.passages += len(article.passages)
                if progress:
                    progress(1)
        finally:
            self.store.clear_staged()

    def token_rows(
        self, hashes: list[bytes], encoded: Encoded, title_pieces: list[int]
    ) -> dict[bytes, tuple[np.ndarray, np.ndarray]]:
        """Each sentence's word pieces after its title's, with their int8 vectors in the
        store's projection (fitted on these when the store has none yet)."""
        body = [slice(n, None) for n in title_pieces]
        projection = self.store.token_projection()
        if projection is None:
            projection = self.store.set_token_projection(
                fit_projection(
                    [t[cut] for t, cut in zip(encoded.tokens, body, strict=True)],
                    self.embedder.dim,
                )
            )
        return {
            h: (encoded.token_ids[i][body[i]], quantize(encoded.tokens[i][body[i]], projection))
            for i, h in enumerate(hashes)
        }

    def title_pieces(self, titles: list[str]) -> list[int]:
        """Word pieces each (cut) title takes before its sentence, special tokens left out."""
        return [n - 2 for n in self.embedder.count_tokens(titles)]


def _title_from_key(key: str) -> str:
    tail = key.rstrip("/").rsplit("/", 1)[-1]
    return tail.rsplit(".", 1)[0].replace("-", " ").replace("_", " ") or key
