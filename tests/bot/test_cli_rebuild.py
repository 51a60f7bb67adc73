"""`qabot rebuild`: the search indexes made anew from the store, in the data folder or in
Qdrant's engine (in process), through the CLI's entry point. The store is written with the
deterministic embedder under the bundled model's name and size: rebuilding encodes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from store.db import Store
from store.indexes.qdrant_transport import EdgeTransport
from store.ingest import Ingestor
from store.models import RawArticle
from tests.doubles import HashingEmbedder

ARTICLES = [
    RawArticle(key=f"{name}.txt", title=title, text=text, pre_cleaned=True)
    for name, title, text in [
        ("bridge", "Harwick footbridge", "Maria Olsen replaced every cable. It took a year."),
        ("ferry", "Island ferry", "The island ferry resumed sailing in April."),
    ]
]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    embedder = HashingEmbedder(dim=384, name="all-MiniLM-L6-v2")
    store = Store(tmp_path / "qabot.sqlite3", model=embedder.name, dim=embedder.dim)
    Ingestor(store, embedder).ingest(ARTICLES)
    store.close()
    return tmp_path


def _run(data_dir: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["--data-dir", str(data_dir), *args]) == 0
    out = capsys.readouterr().out
    return dict(json.loads(out))


def test_rebuild_writes_the_local_indexes_anew_from_the_store(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "not built yet" in str(_run(data_dir, "stats", "--json", capsys=capsys)["index"])
    report = _run(data_dir, "rebuild", "--json", capsys=capsys)
    assert report["sentences"] == 3 and report["passages"] == 2
    stats = _run(data_dir, "stats", "--json", capsys=capsys)
    assert "index" not in stats and "sentences_index" in stats  # built for this generation
    # Indexes damaged on disk (a file lost): rebuilt whole, the store untouched.
    [gen] = (data_dir / "index").glob("gen-*")
    (gen / "sentences.vectors.npy").unlink()
    before = _run(data_dir, "stats", "--json", capsys=capsys)
    again = _run(data_dir, "rebuild", "--json", capsys=capsys)
    assert again["generation"] == report["generation"]
    assert (gen / "sentences.vectors.npy").is_file()
    after = _run(data_dir, "stats", "--json", capsys=capsys)
    assert {k: after[k] for k in ("articles", "sentences", "generation")} == {
        k: before[k] for k in ("articles", "sentences", "generation")
    }


def test_rebuild_rewrites_every_qdrant_point(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QABOT_QDRANT_URL", "edge:")
    report = _run(data_dir, "rebuild", "--json", capsys=capsys)
    assert str(report["search"]).startswith("qdrant at edge://")
    assert report["sentences"] == 3 and report["passages"] == 2
    edge = EdgeTransport.at(data_dir / "qdrant-edge")
    try:
        assert edge.count("sentences") == 3 and edge.count("passages") == 2
        edge.delete_ids("sentences", [h.id for h in edge.scroll("sentences")][:2])
        assert edge.count("sentences") == 1  # points lost behind the store's back
    finally:
        edge.close()
    _run(data_dir, "rebuild", "--json", capsys=capsys)
    edge = EdgeTransport.at(data_dir / "qdrant-edge")
    try:
        assert edge.count("sentences") == 3 and edge.count("passages") == 2
    finally:
        edge.close()


def test_rebuild_prints_what_it_built(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(data_dir), "rebuild"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("rebuilt generation ") and "3 sentences, 2 passages" in out
