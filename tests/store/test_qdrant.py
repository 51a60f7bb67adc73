"""Qdrant as the search engine, against its real engine in process (qdrant-edge-py) and
qdrant-client's request path (its local mode): the words score as qabot's BM25, the points
follow the store article by article, a broken sync is finished by the next one, and a Qdrant
that is down is one line naming it, its credentials masked."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from retriever.retriever import Retriever
from retriever.weights import Weights
from store.db import Store
from store.errors import SearchBackendError
from store.indexes.bm25 import BM25, tokenize
from store.indexes.qdrant import (
    EdgeTransport,
    QdrantIndexes,
    Transport,
    mask_url,
    open_transport,
)
from store.indexes.seams import Allowed
from store.ingest import Ingestor
from store.models import RawArticle
from tests.doubles import HashingEmbedder
from tests.engines import index_source, qdrant_units

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


def _retriever(store: Store, source: QdrantIndexes, tmp_path: Path) -> Retriever:
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
