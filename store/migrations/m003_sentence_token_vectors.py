"""3: token vectors for the sentences of stores written before they were kept (2026-12-02).

A sentence without them ranks by its mean vector alone. They are rebuilt from the store, not
from the sources (which may be gone): a sentence's embedded text is its article's title, cut
as at ingest, a newline and the sentence, checked against the hash its vector is kept under.
A sentence whose text cannot be rebuilt so keeps ranking without them. The part done is
marked by the last hash handled (sentences are taken in hash order), so each run resumes
where the last stopped and reads only the rows it handles.
"""

from __future__ import annotations

import logging
import sqlite3

from store.migrations.writer import Writer
from store.models import embed_title, embedded_text, text_hash

log = logging.getLogger(__name__)

CURSOR = "backfill:3:after"  # meta row: the hex hash the last run stopped after
_CHUNK = 512  # sentences embedded at a time


def done_by_flags(db: sqlite3.Connection) -> list[int]:
    """[3] for a store that said so before migrations were numbered, else []."""
    row = db.execute("SELECT value FROM meta WHERE key = 'tokens_complete'").fetchone()
    return [3] if row is not None and row[0] == "1" else []


def run(ingest: Writer, limit: int) -> tuple[int, bool]:
    store = ingest.store
    after = bytes.fromhex(store.meta(CURSOR) or "")
    rows = store.sentences_without_tokens(after=after, limit=limit)
    finished = len(rows) < limit
    todo = []
    for h, title, text in rows:
        embedded = embedded_text(title, text)
        if text_hash(embedded) == h:
            todo.append((h, embedded, embed_title(title)))
    if todo:
        log.warning(
            "embedding %d sentences stored before token vectors were kept%s",
            len(todo),
            "" if finished else "; more on the next ingests",
        )
    pieces: dict[str, int] = {}
    for lo in range(0, len(todo), _CHUNK):
        chunk = todo[lo : lo + _CHUNK]
        titles = sorted({t for _, _, t in chunk} - pieces.keys())
        pieces.update(zip(titles, ingest.title_pieces(titles), strict=True))
        encoded = ingest.embedder.encode_sentences([e for _, e, _ in chunk], ingest.batch_size)
        store.put_tokens(
            ingest.token_rows([h for h, _, _ in chunk], encoded, [pieces[t] for *_, t in chunk])
        )
    if rows:
        store.set_meta(CURSOR, rows[-1][0].hex())
    return len(todo), finished
