"""The ingest pipeline and the store, on SQLite and on PostgreSQL (tests/engines.py), with a
deterministic embedder passed in."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from store.db import Store as SqliteStore
from store.errors import ModelMismatchError, NotFoundError, StoreCorruptError
from store.indexes.build import build_indexes
from store.indexes.saved import open_indexes
from store.indexes.tokens import Encoded
from store.ingest import Ingestor
from store.models import RawArticle
from store.seams import Store
from store.sources.files import find_files, load_file
from tests.doubles import HashingEmbedder
from tests.engines import OpenStore

BODY = (
    "The bridge reopened on Monday after a two-year repair of all its cables. "
    "The work cost 48 million dollars, more than the city had planned.\n\n"
    "Mayor Lena Ortiz was the first to cross the bridge on a bicycle."
)


class CountingEmbedder(HashingEmbedder):
    """Counts what it is asked to embed, to prove unchanged text is not embedded again."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def encode_documents(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.seen.extend(texts)
        return super().encode_documents(texts, batch_size)


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    """The test's store, on each backend."""
    return open_store()


def article(text: str = BODY, key: str = "https://example.org/bridge", **kw: str) -> RawArticle:
    return RawArticle(
        key=key,
        text=text,
        title=kw.pop("title", "Bridge reopens"),
        url=key if key.startswith("http") else None,
        pre_cleaned=True,
        **kw,
    )


def counts(store: Store) -> tuple[int, int, int, int]:
    one = store.execute
    return (
        one("SELECT COUNT(*) FROM articles").fetchone()[0],
        one("SELECT COUNT(*) FROM sentences").fetchone()[0],
        one("SELECT COUNT(*) FROM passages").fetchone()[0],
        one("SELECT COUNT(*) FROM vectors").fetchone()[0],
    )


def test_ingest_stores_sentences_with_offsets_and_passages(store: Store) -> None:
    report = Ingestor(store, HashingEmbedder()).ingest([article()])
    assert report.added == ["Bridge reopens"] and report.sentences == 3
    [info] = store.articles()
    text = store.article_text(info.id)
    sentences = store.sentences_of(info.id)
    assert [text[s.start : s.end] for s in sentences] == [s.text for s in sentences]
    assert sentences[2].text == "Mayor Lena Ortiz was the first to cross the bridge on a bicycle."
    passages = store.passages_of(info.id)
    assert [(p.first, p.last) for p in passages] == [(0, 1), (2, 2)]  # one per paragraph


def test_reingest_is_a_no_op_and_embeds_nothing(store: Store) -> None:
    emb = CountingEmbedder()
    ingest = Ingestor(store, emb)
    ingest.ingest([article()])
    before, generation, embedded = counts(store), store.generation, len(emb.seen)
    report = ingest.ingest([article()])
    assert report.unchanged == ["Bridge reopens"] and not report.added and not report.updated
    assert counts(store) == before and store.generation == generation
    assert len(emb.seen) == embedded


def tokens_complete(store: Store) -> bool:
    """Whether the store says every sentence has its token vectors (migration 3 done)."""
    return 3 in store.migrations_done()


def test_a_store_written_before_token_vectors_gets_them_on_the_next_ingest(
    store: Store, open_store: OpenStore
) -> None:
    emb = CountingEmbedder()
    ingest = Ingestor(store, emb)
    ingest.ingest([article()])
    kept = store.execute("SELECT hash, ids, vecs FROM token_vectors ORDER BY hash").fetchall()
    assert len(kept) == 3
    with store.transaction() as db:  # as a store written before token vectors were kept
        db.execute("DELETE FROM token_vectors")
        # As written before migrations were numbered, without the flag that said "complete".
        db.execute("DELETE FROM meta WHERE key = 'tokens_complete' OR key LIKE 'migration:%'")
    old = open_store()  # opened anew, as by a newer qabot
    assert not tokens_complete(old)
    # Any ingest fills them in, even of another article, from the store alone: the same
    # rows a fresh ingest writes.
    other = article("The library opens on Sundays from next month.", key="library", title="Library")
    report = Ingestor(old, emb).ingest([article(), other])
    assert report.upgraded == 3 and report.unchanged == ["Bridge reopens"]
    assert report.added == ["Library"]
    again = old.execute("SELECT hash, ids, vecs FROM token_vectors ORDER BY hash").fetchall()
    assert [r for r in again if r[0] in {k[0] for k in kept}] == kept
    assert tokens_complete(old)
    table = build_indexes(old).sentences.tokens
    assert table is not None and (np.diff(table.offsets) > 0).all()
    # Once done, it is not looked for again.
    assert Ingestor(old, emb).ingest([article()]).upgraded == 0


def test_a_large_old_store_is_upgraded_a_bounded_part_per_ingest(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import store.ingest as ingest_module

    ingest = Ingestor(store, HashingEmbedder())
    ingest.ingest([article()])
    with store.transaction() as db:
        db.execute("DELETE FROM token_vectors")
        # As written before migrations were numbered, without the flag that said "complete".
        db.execute("DELETE FROM meta WHERE key = 'tokens_complete' OR key LIKE 'migration:%'")
    monkeypatch.setattr(ingest_module, "_UPGRADE_MAX", 2)
    assert ingest.ingest([]).upgraded == 2 and not tokens_complete(store)
    assert len(store.sentences_without_tokens()) == 1
    assert ingest.ingest([]).upgraded == 1 and tokens_complete(store)


def test_edited_article_replaces_old_version_and_embeds_only_new_text(store: Store) -> None:
    emb = CountingEmbedder()
    ingest = Ingestor(store, emb)
    ingest.ingest([article()])
    emb.seen.clear()
    edited = BODY.replace("Mayor Lena Ortiz", "Deputy mayor Sam Lee")
    report = ingest.ingest([article(edited)])
    assert report.updated == ["Bridge reopens"]
    # Sentences and passages are embedded under their title; the changed sentence is a
    # one-sentence passage, so the same text serves both and is embedded once. Nothing else.
    assert emb.seen == [
        "Bridge reopens\nDeputy mayor Sam Lee was the first to cross the bridge on a bicycle.",
    ]
    [info] = store.articles()
    texts = [s.text for s in store.sentences_of(info.id)]
    assert not any("Lena Ortiz" in t for t in texts)
    # No stale rows or vectors from the old version remain.
    assert counts(store) == (1, 3, 2, 4)
    rows = store.execute("SELECT text FROM sentences").fetchall()
    assert all("Lena" not in r[0] for r in rows)


def test_forget_removes_article_rows_and_orphan_vectors(store: Store) -> None:
    ingest = Ingestor(store, HashingEmbedder())
    ingest.ingest(
        [
            article(),
            article(
                "A different article about an orchard of apple trees.",
                key="https://example.org/orchard",
                title="Orchard",
            ),
        ]
    )
    [orchard] = store.find("https://example.org/orchard")
    store.forget(orchard.id[:10])
    assert [a.title for a in store.articles()] == ["Bridge reopens"]
    assert counts(store) == (1, 3, 2, 4)
    with pytest.raises(NotFoundError, match="qabot list"):
        store.forget("no-such-article")


def test_indexes_follow_the_store_and_rebuild_when_stale_or_broken(
    store: Store, tmp_path: Path
) -> None:
    ingest = Ingestor(store, HashingEmbedder())
    ingest.ingest([article()])
    folder = tmp_path / "index"
    first = open_indexes(store, folder)
    assert len(first.sentences.rowids) == 3
    ingest.ingest(
        [
            article(
                "The orchard has one hundred and twenty young trees.",
                key="https://example.org/orchard",
                title="Orchard",
            )
        ]
    )
    second = open_indexes(store, folder)  # stale: the generation moved on
    assert len(second.sentences.rowids) == 4 and second.generation > first.generation
    current = folder / (folder / "CURRENT").read_text()
    (current / "sentences.vectors.npy").write_bytes(b"garbage")
    third = open_indexes(store, folder)
    assert len(third.sentences.rowids) == 4
    np.testing.assert_array_equal(third.sentences.rowids, build_indexes(store).sentences.rowids)


def test_saved_indexes_carry_the_z_score_sample_so_a_first_question_need_not_gather_it(
    store: Store, tmp_path: Path
) -> None:
    from store.indexes.build import sample_rows, sample_vectors

    Ingestor(store, HashingEmbedder()).ingest([article()])
    folder = tmp_path / "index"
    open_indexes(store, folder)  # built and saved
    loaded = open_indexes(store, folder)  # read back
    assert loaded.sample_rows is not None
    gathered = sample_rows(loaded)
    for unit, saved, fresh in zip(
        (loaded.sentences, loaded.passages), loaded.sample_rows, gathered, strict=True
    ):
        terms = unit.bm25.query_terms("bridge reopened cables Monday")
        assert terms
        np.testing.assert_array_equal(saved.scores(terms), fresh.scores(terms))
        assert saved.scores(terms).max() > 0
    # And their vectors, as the searches decode them.
    assert loaded.sample_vectors is not None
    for saved_vectors, fresh_vectors in zip(
        loaded.sample_vectors, sample_vectors(loaded), strict=True
    ):
        assert saved_vectors.shape[0] > 0
        np.testing.assert_array_equal(saved_vectors, fresh_vectors)
    # A folder of this format always holds them: one without is broken, and rebuilt.
    current = folder / (folder / "CURRENT").read_text()
    for name in ("sentences", "passages"):
        (current / f"sample.{name}.npz").unlink()
        (current / f"sample.{name}.vectors.npy").unlink()
    rebuilt = open_indexes(store, folder)
    assert rebuilt.sample_rows is not None and rebuilt.sample_vectors is not None
    current = folder / (folder / "CURRENT").read_text()
    assert (current / "sample.sentences.npz").exists()


def test_store_refuses_another_model(open_store: OpenStore) -> None:
    open_store(model="hashing-64", dim=64).close()
    with pytest.raises(ModelMismatchError, match="hashing-64"):
        open_store(model="all-MiniLM-L6-v2", dim=384)


def test_store_refuses_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "qabot.sqlite3"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreCorruptError, match="--data-dir"):
        SqliteStore(path, model="hashing-64", dim=64)


def test_long_sentences_are_cut_to_fit_the_window(store: Store) -> None:
    emb = HashingEmbedder(max_tokens=32)
    run_on = " ".join(f"token{i}" for i in range(100))  # one 100-word "sentence"
    Ingestor(store, emb).ingest([article(run_on, title="T")])
    [info] = store.articles()
    text = store.article_text(info.id)
    passages = store.passages_of(info.id)
    assert all(emb.count_tokens([f"T\n{p.text}"])[0] <= 32 for p in passages)
    # Nothing is lost: the passages cover every word.
    assert " ".join(p.text for p in passages) == text


def test_bad_inputs_are_skipped_with_reasons_and_the_rest_goes_in(
    store: Store, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.txt").write_text("Good title\n\n" + BODY, encoding="utf-8")
    (folder / "empty.txt").write_text("  \n", encoding="utf-8")
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02binary")
    (folder / "latin1.txt").write_bytes("Caf\xe9 au lait".encode("latin-1"))
    (folder / "image.png").write_bytes(b"\x89PNG")
    (folder / "items.jsonl").write_text(
        json.dumps({"title": "J1", "text": "A JSON article with enough words in it to be body."})
        + "\n{broken\n"
        + json.dumps({"title": "no text"})
        + "\n",
        encoding="utf-8",
    )
    items = (
        x for f in find_files(folder) for x in ([f] if not isinstance(f, Path) else load_file(f))
    )
    report = Ingestor(store, HashingEmbedder()).ingest(items)
    reasons = {Path(s.split(":")[0]).name: r for s, r in report.skipped}
    assert sorted(report.added) == ["Good title", "J1"]
    assert reasons["empty.txt"] == "empty file"
    assert reasons["binary.txt"] == "binary file, not text"
    assert reasons["latin1.txt"].startswith("invalid UTF-8 at byte 3")
    assert "unsupported file type '.png'" in reasons["image.png"]
    assert any("invalid JSON" in r for r in reasons.values())
    assert any('no "text" field' in r for r in reasons.values())


_KILL_SCRIPT = """
import sys, time
from pathlib import Path
from store.db import Store
from tests.doubles import HashingEmbedder
from store.ingest import Ingestor
from store.sources.files import find_files, load_file
from store.models import RawArticle

class Slow(HashingEmbedder):
    def encode_documents(self, texts, batch_size=64):
        time.sleep(0.05)
        return super().encode_documents(texts, batch_size)

store = Store(Path(sys.argv[1]), model="hashing-64", dim=64)
arts = (RawArticle(key=f"k{i}", title=f"Article {i}", pre_cleaned=True,
        text=" ".join(f"Sentence {j} of article {i} says thing {i * j + 7}." for j in range(300)))
        for i in range(1000))
print("started", flush=True)
Ingestor(store, Slow()).ingest(arts)
"""


def test_killed_ingest_leaves_whole_articles_only(tmp_path: Path) -> None:
    path = tmp_path / "qabot.sqlite3"
    store = SqliteStore(path, model="hashing-64", dim=64)
    Ingestor(store, HashingEmbedder()).ingest([article()])
    store.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, str(path)], env=env, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"started"
    # Killed once a few articles are in (a fixed sleep killed it before any on a busy machine),
    # most likely in the middle of the next one.
    watch = sqlite3.connect(path)
    deadline = time.monotonic() + 120
    while watch.execute("SELECT COUNT(*) FROM articles").fetchone()[0] < 3:
        assert time.monotonic() < deadline and proc.poll() is None, "the ingest stored nothing"
        time.sleep(0.05)
    watch.close()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = db.execute(
        "SELECT a.key, (SELECT COUNT(*) FROM sentences s WHERE s.article_id = a.id),"
        " (SELECT COUNT(*) FROM passages p WHERE p.article_id = a.id) FROM articles a"
    ).fetchall()
    assert ("https://example.org/bridge", 3, 2) in rows
    partial = [r for r in rows if r[0].startswith("k") and r[1] != 300]
    assert partial == [] and len(rows) >= 2  # some were written, none half-written
    missing = db.execute(
        "SELECT COUNT(*) FROM sentences s LEFT JOIN vectors v ON v.hash = s.vec_hash"
        " WHERE v.hash IS NULL"
    ).fetchone()[0]
    assert missing == 0
    db.close()
    # The store opens and indexes fine afterwards.
    reopened = SqliteStore(path, model="hashing-64", dim=64)
    assert len(build_indexes(reopened).sentences.rowids) == sum(r[1] for r in rows)


def test_interrupt_during_embedding_leaves_store_as_before(store: Store) -> None:
    class Interrupting(HashingEmbedder):
        def encode_documents(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
            raise KeyboardInterrupt

    Ingestor(store, HashingEmbedder()).ingest([article()])
    before = counts(store)
    with pytest.raises(KeyboardInterrupt):
        Ingestor(store, Interrupting()).ingest(
            [article("Some new article text that needs embedding now.", key="k2", title="New")]
        )
    assert counts(store) == before


class RecordingEmbedder(HashingEmbedder):
    """Records how many texts each call hands the model: a batch must bound them all."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []
        self.fail_at = fail_at

    def encode_documents(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.calls.append(("encode", len(texts)))
        return super().encode_documents(texts, batch_size)

    def encode_sentences(self, texts: list[str], batch_size: int = 64) -> Encoded:
        self.calls.append(("encode_tokens", len(texts)))
        if self.fail_at is not None and len(self.calls) >= self.fail_at:
            raise KeyboardInterrupt
        return super().encode_sentences(texts, batch_size)

    def count_tokens(self, texts: list[str]) -> list[int]:
        self.calls.append(("count_tokens", len(texts)))
        return super().count_tokens(texts)


# One 5,000-sentence article on a single line, as a 5 MB paste is, in miniature.
LONG = " ".join(
    f"Sentence {i} of the long report says item {i * 7} was counted." for i in range(5000)
)


def test_a_large_article_reaches_the_model_a_bounded_batch_at_a_time(store: Store) -> None:
    emb = RecordingEmbedder()
    report = Ingestor(store, emb).ingest([article(LONG, key="k-long", title="Long")])
    assert report.added == ["Long"] and report.sentences == 5000
    # The model (and the tokenizer) never hold more than a batch of the article at once.
    assert max(n for _, n in emb.calls) <= 512
    assert sum(n for kind, n in emb.calls if kind == "encode_tokens") == 5000
    # And all of it is stored, each sentence with its vector and its token vectors.
    one = store.execute
    assert (
        one(
            "SELECT COUNT(*) FROM sentences s JOIN vectors v ON v.hash = s.vec_hash"
            " JOIN token_vectors t ON t.hash = s.vec_hash"
        ).fetchone()[0]
        == 5000
    )
    assert (
        one(
            "SELECT COUNT(*) FROM passages p LEFT JOIN vectors v ON v.hash = p.vec_hash"
            " WHERE v.hash IS NULL"
        ).fetchone()[0]
        == 0
    )


def test_interrupting_a_large_article_between_batches_leaves_nothing_of_it(store: Store) -> None:
    Ingestor(store, HashingEmbedder()).ingest([article()])
    before = counts(store)
    with pytest.raises(KeyboardInterrupt):
        Ingestor(store, RecordingEmbedder(fail_at=8)).ingest(
            [article(LONG, key="k-long", title="Long")]
        )
    assert counts(store) == before  # the batches embedded before it are not in the store
    # The next ingest stores it whole.
    report = Ingestor(store, HashingEmbedder()).ingest([article(LONG, key="k-long", title="Long")])
    assert report.added == ["Long"] and counts(store)[1] == 3 + 5000
