"""PostgreSQL as the store several processes share (store/postgres.py), against a real
PostgreSQL 18: what one process ingests, another answers; a process killed mid-ingest
leaves the store whole; a store outlives the server restarting."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from retriever.retriever import Retriever
from retriever.weights import Weights
from store.errors import StoreUnavailableError
from store.indexes.build import build_indexes
from store.ingest import Ingestor
from store.models import RawArticle
from store.postgres import PostgresStore
from tests.doubles import HashingEmbedder
from tests.engines import PostgresServer, database_name

MODEL = dict(model="hashing-64", dim=64)
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

_WRITER = """
import sys
from store.ingest import Ingestor
from store.models import RawArticle
from store.postgres import PostgresStore
from tests.doubles import HashingEmbedder

store = PostgresStore(sys.argv[1], model="hashing-64", dim=64)
Ingestor(store, HashingEmbedder()).ingest([RawArticle(
    key="lighthouse", title="Lighthouse", pre_cleaned=True,
    text="The old lighthouse on Kerr Point was painted red and white in June.")])
print("ingested", flush=True)
"""


def test_what_one_process_ingests_another_answers_within_seconds(
    postgres_url: str, tmp_path: Path
) -> None:
    embedder = HashingEmbedder()
    store = PostgresStore(postgres_url, **MODEL)  # type: ignore[arg-type]
    Ingestor(store, embedder).ingest(
        [RawArticle(key="ferry", title="Ferry", text="The ferry sails at nine.", pre_cleaned=True)]
    )
    # This process answers from its own index folder (another machine's, as it may be).
    answering = Retriever(store, embedder, tmp_path / "index", weights=Weights(abstain_below=0.0))
    question = "What colours was the lighthouse on Kerr Point painted?"
    assert all("lighthouse" not in a.text for a in answering.ask(question, k=1).answers)
    writer = subprocess.run(
        [sys.executable, "-c", _WRITER, postgres_url], env=ENV, capture_output=True, timeout=120
    )
    assert writer.returncode == 0, writer.stderr.decode()[-2000:]
    started = time.monotonic()
    answer = answering.ask(question, k=1)
    assert answer.answers[0].text.startswith("The old lighthouse on Kerr Point")
    assert time.monotonic() - started < 5
    store.close()


_KILLED = """
import sys, time
from store.ingest import Ingestor
from store.models import RawArticle
from store.postgres import PostgresStore
from tests.doubles import HashingEmbedder

class Slow(HashingEmbedder):
    def encode_documents(self, texts, batch_size=64):
        time.sleep(0.05)
        return super().encode_documents(texts, batch_size)

store = PostgresStore(sys.argv[1], model="hashing-64", dim=64)
arts = (RawArticle(key=f"k{i}", title=f"Article {i}", pre_cleaned=True,
        text=" ".join(f"Sentence {j} of article {i} says thing {i * j + 7}." for j in range(300)))
        for i in range(1000))
print("started", flush=True)
Ingestor(store, Slow()).ingest(arts)
"""


def test_a_process_killed_mid_ingest_leaves_whole_articles_for_the_others(
    postgres_url: str,
) -> None:
    other = PostgresStore(postgres_url, **MODEL)  # type: ignore[arg-type]
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED, postgres_url], env=ENV, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"started"
    deadline = time.monotonic() + 120
    while other.stats()["articles"] < 3:  # type: ignore[operator]
        assert time.monotonic() < deadline and proc.poll() is None, "the ingest stored nothing"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    counts = [(a.key, a.sentences) for a in other.articles()]
    assert len(counts) >= 3 and all(n == 300 for _, n in counts)  # none half-written
    missing = other.execute(
        "SELECT COUNT(*) FROM sentences s LEFT JOIN vectors v ON v.hash = s.vec_hash"
        " WHERE v.hash IS NULL"
    ).fetchone()[0]
    assert missing == 0
    # The lock the killed writer held went with its connection: this one writes at once.
    started = time.monotonic()
    Ingestor(other, HashingEmbedder()).ingest(
        [RawArticle(key="after", title="After", text="Written after the kill.", pre_cleaned=True)]
    )
    assert time.monotonic() - started < 10
    assert len(build_indexes(other).sentences.rowids) == sum(n for _, n in counts) + 1
    other.close()


def test_a_store_goes_on_after_the_server_restarts(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = PostgresStore(postgres_url, **MODEL)  # type: ignore[arg-type]
    ingest = Ingestor(store, HashingEmbedder())
    ingest.ingest([RawArticle(key="a", title="A", text="Before the restart.", pre_cleaned=True)])
    postgres_server.pg_ctl("-m", "fast", "restart")
    # The dropped connection is made again on the next use: reads, then writes.
    assert [a.key for a in store.articles()] == ["a"]
    ingest.ingest([RawArticle(key="b", title="B", text="After the restart.", pre_cleaned=True)])
    assert sorted(a.key for a in store.articles()) == ["a", "b"]
    store.close()


def test_a_write_is_the_first_use_of_a_connection_the_restart_dropped(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """What a bot's writer meets: its connection sat idle through the restart, and the
    first thing asked of it since is a write (an /ingest, a vote)."""
    store = PostgresStore(postgres_url, **MODEL)  # type: ignore[arg-type]
    postgres_server.pg_ctl("-m", "fast", "restart")
    store.set_meta("restarted", "yes")  # a write transaction, before any read
    assert store.meta("restarted") == "yes"
    store.close()


def test_after_a_connect_times_out_the_store_fails_fast_for_a_growing_while(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """A server that answers nothing (stopped where it is, as a host that drops packets)
    costs a connect its whole timeout: after one times out, what comes next is refused at
    once for a while (1 s, then 2 s here), rather than each question waiting out a connect
    of its own; once a connect succeeds, the wait starts again from its first figure."""
    store = PostgresStore(postgres_url, **MODEL, retry=(1.0, 15.0), connect_seconds=2)  # type: ignore[arg-type]

    def failing() -> tuple[float, str]:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as failed:
            store.articles()
        return time.monotonic() - started, str(failed.value)

    postgres_server.pg_ctl("-m", "fast", "restart")  # the store's connection is dropped
    postgres_server.freeze()
    try:
        took, said = failing()
        assert took >= 1.9 and "next try" not in said  # tried: waited out the timeout
        took, said = failing()
        assert took < 0.5 and re.search(r"timeout expired.*; next try in (0\.\d|1\.0) s", said)
        time.sleep(1.05)
        took, said = failing()
        assert took >= 1.9 and "next try" not in said
        took, said = failing()
        assert took < 0.5 and re.search(r"; next try in (1\.\d|2\.0) s", said)  # longer
        with pytest.raises(StoreUnavailableError, match="next try in"):
            store.set_meta("k", "v")  # writes too
    finally:
        postgres_server.freeze(False)
    time.sleep(2.05)
    assert store.articles() == []  # connected again
    postgres_server.pg_ctl("-m", "fast", "restart")
    postgres_server.freeze()
    try:
        failing()
        took, said = failing()  # the wait began again from its first figure
        assert took < 0.5 and re.search(r"; next try in (0\.\d|1\.0) s", said)
    finally:
        postgres_server.freeze(False)
    store.close()


def test_a_second_process_with_another_model_is_refused(postgres_url: str) -> None:
    PostgresStore(postgres_url, **MODEL).close()  # type: ignore[arg-type]
    from store.errors import ModelMismatchError

    with pytest.raises(ModelMismatchError, match="hashing-64"):
        PostgresStore(postgres_url, model="all-MiniLM-L6-v2", dim=384)


def test_a_database_that_refuses_is_one_line_with_the_password_masked(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.url("no_such_database").replace("postgres:@", "postgres:hunter2@")
    with pytest.raises(StoreUnavailableError) as caught:
        PostgresStore(url, **MODEL)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "postgres:***@" in message and "hunter2" not in message
    assert "no_such_database" in message and "\\n" not in message
    assert isinstance(caught.value.__cause__, psycopg.Error)


def test_an_article_whose_vectors_went_missing_is_not_written(postgres_url: str) -> None:
    """What another process's forget could do between an ingest's look-up and its write."""
    from store.errors import StoreError
    from store.ingest import article_id
    from store.models import PreparedArticle, SentenceSpan

    store = PostgresStore(postgres_url, **MODEL)  # type: ignore[arg-type]
    text = "A sentence whose vector nobody staged."
    article = PreparedArticle(
        id=article_id("default", "k", "T", text),
        key="k",
        collection="default",
        title="T",
        text=text,
        guid=None,
        sentences=(SentenceSpan(start=0, end=len(text), passage=0, embedded="T\n" + text),),
        passages=(),
    )
    generation = store.generation
    with pytest.raises(StoreError, match="ingest it again"):
        store.put_article(article)
    assert store.articles() == [] and store.generation == generation
    store.close()


def test_a_retriever_answers_from_what_it_holds_while_the_database_is_away(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    embedder = HashingEmbedder()
    store = PostgresStore(postgres_url, **MODEL)  # type: ignore[arg-type]
    ingest = Ingestor(store, embedder)
    ingest.ingest(
        [RawArticle(key="ferry", title="Ferry", text="The ferry sails at nine.", pre_cleaned=True)]
    )
    retriever = Retriever(store, embedder, tmp_path / "index", weights=Weights(abstain_below=0.0))
    question = "When does the ferry sail?"
    before = retriever.ask(question, k=1).model_dump(exclude={"timings"})
    name = database_name(postgres_url)
    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
        # The database goes away: its connections cut, new ones refused.
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        try:
            with pytest.raises(StoreUnavailableError, match="is not answering"):
                store.articles()
            assert retriever.ask(question, k=1).model_dump(exclude={"timings"}) == before
        finally:
            admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    # Back: what is written now is answered.
    ingest.ingest(
        [RawArticle(key="bus", title="Bus", text="The night bus leaves at two.", pre_cleaned=True)]
    )
    assert (
        retriever.ask("When does the night bus leave?", k=1)
        .answers[0]
        .text.startswith("The night bus")
    )
    store.close()


def test_a_connection_cut_mid_write_writes_nothing_and_is_said_as_such(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    store = PostgresStore(postgres_url, **MODEL)  # type: ignore[arg-type]
    generation = store.generation
    with pytest.raises(StoreUnavailableError, match="is not answering"):  # noqa: SIM117
        with store.transaction() as db:
            db.execute("INSERT INTO meta VALUES ('half', 'written')")
            pid = db.execute("SELECT pg_backend_pid()").fetchall()[0][0]
            with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            db.execute("INSERT INTO meta VALUES ('never', 'written')")
    # The next use connects again; nothing of the cut transaction is there.
    assert store.meta("half") is None and store.meta("never") is None
    assert store.generation == generation
    store.close()
