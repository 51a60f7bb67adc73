"""`qabot migrate --to postgresql://...`: a SQLite store copied whole into PostgreSQL, and
then the same store there (articles, their sentences and passages, the units the indexes
are built from with their vectors and token vectors, feeds, votes, conversations,
migrations)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from bot.votes import record_answer, record_vote, votes
from retriever.retriever import Retriever
from store.db import Store as SqliteStore
from store.ingest import Ingestor
from store.models import RawArticle, StoredSentence, StoredTurn
from store.postgres import PostgresStore
from store.seams import Store
from tests.doubles import HashingEmbedder

MODEL = dict(model="hashing-64", dim=64)
ARTICLES = [
    RawArticle(
        key="bridge",
        title="Harwick footbridge",
        text="The Harwick footbridge reopened on Monday.\n\nMaria Olsen replaced every cable.",
        pre_cleaned=True,
    ),
    RawArticle(
        key="ferry",
        title="Island ferry",
        text="The island ferry resumed sailing in April. Tickets cost four pounds.",
        pre_cleaned=True,
    ),
]


def _everything(store: Store) -> dict[str, object]:
    """What a user (and the index build) can read of a store."""
    arts = sorted(store.articles(), key=lambda a: a.id)
    return {
        "articles": [a.model_dump() for a in arts],
        "texts": [store.article_text(a.id) for a in arts],
        "sentences": [store.sentences_of(a.id) for a in arts],
        "passages": [store.passages_of(a.id) for a in arts],
        "units": [list(store.iter_units(t)) for t in ("sentences", "passages")],
        "index_articles": store.index_articles(),
        "feeds": store.feeds(),
        "votes": store.votes(),
        "conversation": store.conversation("discord:thread:5"),
        "migrations": store.migrations_done(),
    }


def test_migrate_copies_the_sqlite_store_whole_and_it_answers_alike(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    embedder = HashingEmbedder()
    sqlite = SqliteStore(tmp_path / "qabot.sqlite3", **MODEL)  # type: ignore[arg-type]
    Ingestor(sqlite, embedder).ingest(ARTICLES[:1], collection="town")
    Ingestor(sqlite, embedder).ingest(ARTICLES[1:], collection="island")
    sqlite.put_feed("https://example.org/rss", "town", "Town news", allow_private=False)
    shown = record_answer(sqlite, "Who replaced the cables?", ["Maria Olsen ..."], ["x"], 7)
    record_vote(sqlite, shown, 11, 1)
    asked = StoredTurn(
        question="Who replaced the cables?",
        sentences=(StoredSentence(text="Maria Olsen replaced every cable.", article_id="x"),),
        asked_at="2026-12-04T22:00:00+00:00",
    )
    sqlite.put_conversation(["discord:thread:5"], [asked])
    before = _everything(sqlite)
    projection = sqlite.token_projection()
    question = "Who replaced every cable?"
    expected = Retriever(sqlite, embedder, tmp_path / "index-sqlite").ask(question, k=2)
    sqlite.close()

    code = main(["--data-dir", str(tmp_path), "migrate", "--to", postgres_url])
    out = capsys.readouterr().out
    assert code == 0 and "copied 2 articles" in out and "1 answer votes" in out
    assert "1 conversation turns" in out

    pg = PostgresStore(postgres_url, **MODEL)  # type: ignore[arg-type]
    after = _everything(pg)
    for key, value in before.items():
        assert after[key] == value, key
    assert len(after["units"][0]) == 4 and after["votes"][0][1] == "Who replaced the cables?"  # type: ignore[index]
    np.testing.assert_array_equal(pg.token_projection(), projection)
    got = Retriever(pg, embedder, tmp_path / "index-pg").ask(question, k=2)
    assert got.model_dump(exclude={"timings"}) == expected.model_dump(exclude={"timings"})
    # It goes on from there: new rows take new ids, a vote lands on the copied answer.
    record_vote(pg, shown, 12, -1)
    assert record_answer(pg, "Another?", [], []) > shown and len(votes(pg)) == 2
    pg.close()

    # A second copy into the same database is refused, in one line, and changes nothing.
    code = main(["--data-dir", str(tmp_path), "migrate", "--to", postgres_url])
    err = capsys.readouterr().err
    assert code == 1 and "holds 2 articles" in err and err.strip().count("\n") == 0
    check = PostgresStore(postgres_url, **MODEL)  # type: ignore[arg-type]
    assert len(check.articles()) == 2 and len(check.votes()) == 2
    check.close()


def test_text_holding_nul_is_copied_with_a_replacement_and_offsets_that_still_hold(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store written before ingest removed NUL may hold it, and PostgreSQL text cannot:
    each NUL goes over as U+FFFD, one character for one, and the copy says so."""
    import sqlite3

    sqlite = SqliteStore(tmp_path / "qabot.sqlite3", **MODEL)  # type: ignore[arg-type]
    Ingestor(sqlite, HashingEmbedder()).ingest(ARTICLES)
    sqlite.close()
    with sqlite3.connect(tmp_path / "qabot.sqlite3") as db:  # as an older qabot left it
        for table in ("articles", "sentences", "passages"):
            for rowid, text in db.execute(f"SELECT rowid, text FROM {table}").fetchall():
                db.execute(
                    f"UPDATE {table} SET text = ? WHERE rowid = ?",
                    (text.replace("Monday", "Mo\x00day"), rowid),
                )
    code = main(["--data-dir", str(tmp_path), "migrate", "--to", postgres_url])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "1 articles, 1 sentences, 1 passages held NUL characters" in out
    pg = PostgresStore(postgres_url, **MODEL)  # type: ignore[arg-type]
    [bridge] = [a for a in pg.articles() if a.key == "bridge"]
    text = pg.article_text(bridge.id)
    assert "reopened on Mo\ufffdday." in text
    for sentence in pg.sentences_of(bridge.id):
        assert text[sentence.start : sentence.end] == sentence.text
    pg.close()
