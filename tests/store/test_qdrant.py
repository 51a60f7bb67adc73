"""Qdrant as the search engine, against its real engine in process (qdrant-edge-py) and
qdrant-client's request path (its local mode): the words score as qabot's BM25, the points
follow the store article by article, a broken sync is finished by the next one, and a Qdrant
that is down is one line naming it, its credentials masked."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from retriever.retriever import Retriever
from retriever.weights import Weights
from store.db import Store
from store.errors import SearchBackendError
from store.indexes import build as build_module
from store.indexes.bm25 import BM25, tokenize
from store.indexes.build import Indexes
from store.indexes.qdrant import (
    EdgeTransport,
    QdrantIndexes,
    QdrantVectors,
    Transport,
    mask_url,
    open_transport,
)
from store.indexes.saved import LocalIndexes, load_indexes, load_tables, make_resident, open_indexes
from store.indexes.seams import Allowed
from store.ingest import Ingestor
from store.models import RawArticle
from store.seams import Store as AnyStore
from store.seams import StoreReads, UnitRow
from tests.doubles import HashingEmbedder
from tests.engines import OpenStore, index_source, qdrant_units

DOCS = [
    "Harbor Bridge\nThe bridge reopened on Monday after two years of repairs.",
    "Harbor Bridge\nCrews replaced every cable of the bridge, cable by cable.",
    "Orchard\nVolunteers planted forty apple trees in the community orchard.",
    "Orchard\nThe orchard sells apples and pears every Saturday.",
    "Ferry\nThe island ferry resumed sailing in April after the bridge closed.",
]
QUESTIONS = ["Who replaced the cable of the bridge?", "apple trees orchard", "ferry sailing moon"]


@pytest.mark.parametrize("kind", ["qdrant-edge", "qdrant-client"])
def test_qdrant_words_score_every_document_as_qabots_bm25(tmp_path: Path, kind: str) -> None:
    local = BM25.build(DOCS)
    article = np.asarray([0, 0, 1, 1, 2])
    vectors = np.eye(len(DOCS), 8, dtype=np.float32)
    _, words = qdrant_units(kind, tmp_path, vectors, article, ["town", "farm", "isle"], DOCS)
    everyone = np.arange(len(DOCS))
    for question in QUESTIONS:
        toks = tokenize(question)
        mine, theirs = local.terms(toks), words.terms(toks)
        assert len(mine) == len(theirs)  # the same words are known
        expected = local.scores(mine)
        found = words.matches(theirs)
        assert np.allclose(found.at(everyone), expected, rtol=1e-5, atol=1e-6)
        best = {i for i in np.argsort(-expected)[:2].tolist() if expected[i] > 0}
        assert set(found.top(2).tolist()) == best
        assert words.max_score(theirs) == pytest.approx(local.max_score(mine), rel=1e-5)
        assert words.unknown_share(toks) == pytest.approx(local.unknown_share(toks), rel=1e-5)
    # Limited to a collection: nothing from another, and others score 0.
    farm = words.matches(words.query_terms("orchard bridge"), Allowed(("farm",), article == 1))
    assert set(farm.top(5).tolist()) == {2, 3}
    assert farm.at(everyone)[[0, 1, 4]].tolist() == [0.0, 0.0, 0.0]


# -- following the store --------------------------------------------------------------------


def _article(key: str, title: str, text: str) -> RawArticle:
    return RawArticle(key=key, title=title, text=text, pre_cleaned=True)


# Of one length (7 words each), so that forgetting one leaves the average length as it was.
BRIDGE = _article("bridge", "Harwick footbridge", "Maria Olsen replaced every cable.")
FERRY = _article("ferry", "Island ferry", "The island ferry resumed sailing in April.")
MARKET = _article("market", "Market", "The fish market opens on Fridays and Sundays at dawn.")


def _store(tmp_path: Path) -> tuple[Store, Ingestor]:
    embedder = HashingEmbedder()
    store = Store(tmp_path / "qabot.sqlite3", model=embedder.name, dim=embedder.dim)
    return store, Ingestor(store, embedder)


def _retriever(store: AnyStore, source: QdrantIndexes, tmp_path: Path) -> Retriever:
    return Retriever(
        store,
        HashingEmbedder(),
        tmp_path / "index",
        weights=Weights(abstain_below=-1e9),
        search=source,
    )


def _first(retriever: Retriever, question: str) -> str:
    answer = retriever.ask(question, k=1)
    return answer.answers[0].text if answer.answers else ""


def _points(transport: Transport) -> dict[str, int]:
    return {kind: transport.count(kind) for kind in ("sentences", "passages", "articles")}


def test_points_follow_the_store_article_by_article(tmp_path: Path) -> None:
    store, ingest = _store(tmp_path)
    ingest.ingest([BRIDGE, FERRY], collection="town")
    source = index_source("qdrant-edge", tmp_path)
    assert isinstance(source, QdrantIndexes)
    retriever = _retriever(store, source, tmp_path)
    assert _first(retriever, "Who replaced every cable?").startswith("Maria Olsen")
    # Two articles of one sentence and one passage each, two markers and the meta point.
    assert _points(source.transport) == {"sentences": 2, "passages": 2, "articles": 3}
    assert source.last_sync == {"written": 4, "removed": 0, "reweighted": 1}  # new

    ingest.ingest([MARKET], collection="harbour")  # only the new article is written
    assert _first(retriever, "fish market Fridays dawn").startswith("The fish market")
    assert source.last_sync == {"written": 2, "removed": 0, "reweighted": 0}
    answer = retriever.ask("fish market Fridays dawn", k=3, collections=["town"])
    assert all("market" not in a.text for a in answer.answers)  # the tenant filter holds

    store.forget("bridge")  # its points go, the others stay
    assert "Maria Olsen" not in _first(retriever, "Who replaced every cable?")
    assert source.last_sync == {"written": 0, "removed": 1, "reweighted": 0}
    assert _points(source.transport) == {"sentences": 2, "passages": 2, "articles": 3}


def test_a_sync_killed_halfway_is_finished_by_the_next_and_a_rebuild_answers_alike(
    tmp_path: Path,
) -> None:
    store, ingest = _store(tmp_path)
    ingest.ingest([BRIDGE, FERRY, MARKET])
    edge = EdgeTransport.at(tmp_path / "edge")

    class DiesAfterOneWrite:
        """The real engine, its process killed after the first batch it writes."""

        def __init__(self, inner: Transport) -> None:
            self.inner, self.where, self.writes = inner, inner.where, 0

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def upsert(self, kind: str, points: list[object]) -> None:
            if self.writes >= 1:
                raise SearchBackendError("killed")
            self.writes += 1
            self.inner.upsert(kind, points)  # type: ignore[arg-type]

    dying = QdrantIndexes(DiesAfterOneWrite(edge))  # type: ignore[arg-type]
    with pytest.raises(SearchBackendError):
        _retriever(store, dying, tmp_path).ask("Who replaced every cable?")
    assert edge.count("articles") == 0  # no article is marked written

    source = QdrantIndexes(edge)
    retriever = _retriever(store, source, tmp_path)
    questions = ["Who replaced every cable?", "fish market Fridays dawn", "ferry"]
    before = [retriever.ask(q, k=3).model_dump(exclude={"timings"}) for q in questions]
    assert before[0]["answers"][0]["text"].startswith("Maria Olsen")
    assert _points(edge) == {"sentences": 3, "passages": 3, "articles": 4}

    rebuilt = _retriever(store, QdrantIndexes(edge), tmp_path)
    rebuilt.snapshots.source.rebuild(store, tmp_path)
    assert [rebuilt.ask(q, k=3).model_dump(exclude={"timings"}) for q in questions] == before


def test_qdrant_answers_as_the_local_indexes_do(tmp_path: Path) -> None:
    store, ingest = _store(tmp_path)
    ingest.ingest([BRIDGE, FERRY, MARKET])
    local = Retriever(store, HashingEmbedder(), tmp_path / "index")
    qdrant = _retriever(store, index_source("qdrant-edge", tmp_path), tmp_path)  # type: ignore[arg-type]
    for question in ["Who replaced every cable?", "fish market dawn", "April sailing"]:
        mine, theirs = local.rank([question])[0], qdrant.rank([question])[0]
        assert mine.positions.tolist() == theirs.positions.tolist()
        assert np.allclose(mine.scores, theirs.scores, atol=1e-4)


def test_when_the_average_length_moves_every_point_is_reweighted_as_bm25_weighs_it(
    tmp_path: Path,
) -> None:
    store, ingest = _store(tmp_path)
    ingest.ingest([FERRY])  # short documents: the average length the points start with
    source = index_source("qdrant-edge", tmp_path)
    assert isinstance(source, QdrantIndexes)
    qdrant = _retriever(store, source, tmp_path)
    local = Retriever(store, HashingEmbedder(), tmp_path / "index")
    qdrant.ask("ferry")
    long = " ".join(f"The harbour crane {n} lifted crates of timber and steel." for n in range(9))
    ingest.ingest([_article("crane", "Harbour cranes", long), MARKET])
    question = "ferry crane timber market"
    assert qdrant.rank([question], mode="bm25")[0].positions.size > 0
    assert source.last_sync["reweighted"] == 1
    mine, theirs = local.rank([question], mode="bm25")[0], qdrant.rank([question], mode="bm25")[0]
    assert mine.positions.tolist() == theirs.positions.tolist()
    assert np.allclose(mine.scores, theirs.scores, rtol=1e-5)


# -- URLs and a Qdrant that is down ---------------------------------------------------------


def test_urls_are_shown_with_their_secrets_masked() -> None:
    assert (
        mask_url("https://qabot:s3cret@db.example:6333/x") == "https://qabot:***@db.example:6333/x"
    )
    assert mask_url("http://h:6333/?api_key=k3y&x=1") == "http://h:6333/?api_key=%2A%2A%2A&x=1"
    assert mask_url("http://t0ken@h:6333") == "http://***@h:6333"
    assert mask_url("http://h:6333") == "http://h:6333"


def test_an_unknown_or_relative_qdrant_url_is_refused_with_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(SearchBackendError, match=r"not a Qdrant URL.*edge:"):
        open_transport("ftp://user:pw@h/", None, "qabot", tmp_path)
    with pytest.raises(SearchBackendError, match="absolute"):
        open_transport("edge:relative/folder", None, "qabot", tmp_path)
    assert (
        open_transport("edge:", None, "qabot", tmp_path).where
        == f"edge://{tmp_path / 'qdrant-edge'}"
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_qdrant_that_is_down_is_one_line_naming_it_without_its_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A store holding an article, as the bundled model's store is named and sized (the
    # question fails before any encoding).
    embedder = HashingEmbedder(dim=384, name="all-MiniLM-L6-v2")
    store = Store(tmp_path / "qabot.sqlite3", model=embedder.name, dim=embedder.dim)
    Ingestor(store, embedder).ingest([BRIDGE])
    store.close()
    port = _closed_port()
    monkeypatch.setenv("QABOT_QDRANT_URL", f"http://qabot:s3cret@127.0.0.1:{port}")
    monkeypatch.setenv("QABOT_QDRANT_API_KEY", "k3y-k3y")
    data = ["--data-dir", str(tmp_path)]
    assert main([*data, "ask", "Who replaced every cable?"]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"Error: Qdrant at http://qabot:***@127.0.0.1:{port} is not answering")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert main([*data, "stats", "--json"]) == 0
    out, err = capsys.readouterr()
    stats = json.loads(out)
    assert stats["search"] == f"qdrant at http://qabot:***@127.0.0.1:{port}"
    assert stats["qdrant"].startswith("NOT ANSWERING")
    for text in (out, err):
        assert "s3cret" not in text and "k3y-k3y" not in text


def test_stats_name_the_backend_and_its_health(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = ["--data-dir", str(tmp_path)]
    assert main([*data, "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["search"].startswith("local")
    monkeypatch.setenv("QABOT_QDRANT_URL", "edge:")
    assert main([*data, "stats", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["search"] == f"qdrant at edge://{tmp_path / 'qdrant-edge'}"
    assert stats["qdrant"] == "answering; not built yet (built by the next ask)"


# -- the tables an answer reads, saved per generation beside Qdrant -------------------------


class ReadCounting:
    """A store that counts the unit rows its snapshots hand out: building the tables an
    answer reads takes every one (minutes, at a million passages); loading them none."""

    def __init__(self, inner: AnyStore) -> None:
        self.inner = inner
        self.rows_read = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[object]:
        with self.inner.snapshot() as snap:
            yield _CountingSnapshot(snap, self)


class _CountingSnapshot:
    def __init__(self, inner: StoreReads, store: ReadCounting) -> None:
        self.inner, self.store = inner, store

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def iter_units(self, table: str) -> Iterator[UnitRow]:
        for row in self.inner.iter_units(table):
            self.store.rows_read += 1
            yield row


QUESTIONS_ASKED = ["Who replaced every cable?", "fish market dawn", "April sailing"]


def _answers(retriever: Retriever) -> list[object]:
    """Each question's answer and its ranking's positions and scores."""
    out: list[object] = []
    for question in QUESTIONS_ASKED:
        ranked = retriever.rank([question])[0]
        out.append(retriever.ask(question, k=3).model_dump(exclude={"timings"}))
        out.append((ranked.positions.tolist(), np.round(ranked.scores, 5).tolist()))
    return out


def _a_later_process(store: ReadCounting, tmp_path: Path) -> tuple[Retriever, Indexes]:
    """A new process's retriever on the same data folder and Qdrant, and its indexes."""
    source = index_source("qdrant-edge", tmp_path)
    assert isinstance(source, QdrantIndexes)
    retriever = _retriever(store, source, tmp_path)  # type: ignore[arg-type]
    return retriever, retriever.snapshots.current().indexes


def _close(retriever: Retriever) -> None:
    retriever.snapshots.source.close()


def test_a_later_process_maps_the_saved_tables_instead_of_reading_the_store(
    open_store: OpenStore, tmp_path: Path
) -> None:
    store = ReadCounting(open_store())
    Ingestor(store.inner, HashingEmbedder()).ingest([BRIDGE, FERRY, MARKET])
    first, built = _a_later_process(store, tmp_path)
    assert store.rows_read > 0 and built.mapped_from is None  # built, in memory (small)
    before = _answers(first)
    assert before[0]["answers"][0]["text"].startswith("Maria Olsen")  # type: ignore[index]
    _close(first)

    store.rows_read = 0
    second, loaded = _a_later_process(store, tmp_path)
    saved = tmp_path / "index" / "qdrant" / f"gen-{store.generation}"
    assert loaded.mapped_from == saved and store.rows_read == 0  # nothing read but the map
    assert second.snapshots.source.last_sync["written"] == 0  # type: ignore[attr-defined]
    assert _answers(second) == before
    # Read into memory behind the first questions, as a bot does, it answers alike.
    assert make_resident(loaded) > 0 and loaded.mapped_from is None
    assert _answers(second) == before
    _close(second)

    # An empty Qdrant behind the saved tables (a new server, say): the store's rows are read
    # to write its points, the tables still come from their files.
    EdgeTransport.at(tmp_path / "qdrant-edge").create(store.dim)
    store.rows_read = 0
    third, reloaded = _a_later_process(store, tmp_path)
    assert reloaded.mapped_from == saved and store.rows_read > 0
    assert third.snapshots.source.last_sync["written"] == 6  # type: ignore[attr-defined]
    assert _answers(third) == before
    _close(third)


def test_a_new_generation_is_built_and_saved_and_the_old_one_removed(
    open_store: OpenStore, tmp_path: Path
) -> None:
    store = ReadCounting(open_store())
    ingest = Ingestor(store.inner, HashingEmbedder())
    ingest.ingest([BRIDGE, FERRY])
    retriever, _ = _a_later_process(store, tmp_path)
    tables = tmp_path / "index" / "qdrant"
    old = store.generation
    assert sorted(p.name for p in tables.glob("gen-*")) == [f"gen-{old}"]

    ingest.ingest([MARKET], collection="harbour")
    store.rows_read = 0
    assert _first(retriever, "fish market Fridays dawn").startswith("The fish market")
    new = store.generation
    assert new != old and store.rows_read > 0  # built from the store
    assert sorted(p.name for p in tables.glob("gen-*")) == [f"gen-{new}"]
    assert (tables / "CURRENT").read_text(encoding="utf-8") == f"gen-{new}"
    _close(retriever)

    store.rows_read = 0
    later, indexes = _a_later_process(store, tmp_path)
    assert indexes.mapped_from == tables / f"gen-{new}" and store.rows_read == 0
    assert _first(later, "fish market Fridays dawn").startswith("The fish market")
    _close(later)


def test_a_data_folder_switched_between_local_and_qdrant_never_loads_the_others_indexes(
    open_store: OpenStore, tmp_path: Path
) -> None:
    store = ReadCounting(open_store())
    Ingestor(store.inner, HashingEmbedder()).ingest([BRIDGE, FERRY, MARKET])
    index, generation = tmp_path / "index", store.generation

    def local() -> Retriever:
        return Retriever(store, HashingEmbedder(), index, search=LocalIndexes())  # type: ignore[arg-type]

    local().ask("ferry")  # saves index/gen-N, searched here
    qdrant, built = _a_later_process(store, tmp_path)
    assert built.mapped_from is None and store.rows_read > 0  # its own, from the store
    ranked = [qdrant.rank([q])[0].positions.tolist() for q in QUESTIONS_ASKED]
    _close(qdrant)

    back = local().snapshots.current().indexes  # local again: its own generation
    assert back.mapped_from == index / f"gen-{generation}"
    assert back.sentences.bm25 is not None and back.sentences.dense_index is None
    qdrant, again = _a_later_process(store, tmp_path)  # and Qdrant again: its own
    assert again.mapped_from == index / "qdrant" / f"gen-{generation}"
    assert isinstance(again.sentences.dense_index, QdrantVectors)
    assert [qdrant.rank([q])[0].positions.tolist() for q in QUESTIONS_ASKED] == ranked
    _close(qdrant)
    # Each loader refuses the other's folder, even pointed at it.
    assert load_indexes(index / "qdrant", generation, store.model) is None
    assert load_tables(index, generation, store.model) is None


def test_a_large_stores_token_table_is_built_into_its_saved_file(
    open_store: OpenStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ReadCounting(open_store())
    Ingestor(store.inner, HashingEmbedder()).ingest([BRIDGE, FERRY, MARKET])
    in_memory = open_indexes(store.inner, tmp_path / "memory").sentences.tokens
    monkeypatch.setattr(build_module, "SPILL_ROWS", 1)  # every unit counts as large
    retriever, indexes = _a_later_process(store, tmp_path)
    saved = tmp_path / "index" / "qdrant" / f"gen-{store.generation}"
    # Read back from the file it was built into: not a copy held in this process.
    assert indexes.mapped_from == saved
    tokens = indexes.sentences.tokens
    assert tokens is not None and in_memory is not None
    assert tokens.file == saved / "sentences.tokens.npy"
    assert np.asarray(tokens.tokens).tobytes() == np.asarray(in_memory.tokens).tobytes()
    assert not list(saved.parent.glob(".building-*"))
    assert _first(retriever, "Who replaced every cable?").startswith("Maria Olsen")
    _close(retriever)


def test_unreadable_saved_tables_or_an_abandoned_build_are_rebuilt_with_a_line_of_log(
    open_store: OpenStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ReadCounting(open_store())
    Ingestor(store.inner, HashingEmbedder()).ingest([BRIDGE, FERRY, MARKET])
    first, _ = _a_later_process(store, tmp_path)
    before = _answers(first)
    _close(first)
    tables = tmp_path / "index" / "qdrant"
    gen_dir = tables / f"gen-{store.generation}"
    (gen_dir / "sentences.rowids.npy").write_bytes(b"not an array")
    abandoned = tables / ".building-killed"  # a build killed halfway: no lock held
    abandoned.mkdir()
    (tables / ".building-killed.lock").touch()

    store.rows_read = 0
    with caplog.at_level(logging.INFO, logger="store.indexes.saved"):
        second, indexes = _a_later_process(store, tmp_path)
    assert indexes.mapped_from is None and store.rows_read > 0  # rebuilt from the store
    assert any("unreadable" in r.getMessage() and r.exc_info is None for r in caplog.records)
    assert _answers(second) == before
    assert not abandoned.exists()
    _close(second)
    caplog.clear()

    manifest = json.loads((gen_dir / "manifest.json").read_text(encoding="utf-8"))
    (gen_dir / "manifest.json").write_text(json.dumps(manifest | {"model": "other"}))
    with caplog.at_level(logging.INFO, logger="store.indexes.saved"):
        third, indexes = _a_later_process(store, tmp_path)
    assert indexes.mapped_from is None  # another model's tables: rebuilt
    assert any("rebuilding" in r.getMessage() for r in caplog.records)
    _close(third)
