"""`qabot bench`: a small run through the real command, its JSON and its table.

Behaviour only: every figure is present and sane (positive times, ratios, recall in [0, 1],
the index kinds the sizes call for). Timing targets are the benchmark's to report, not a
test's to assert on a noisy machine.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bot.bench_cmd import size_label
from bot.cli import main
from store.indexes.bm25 import BM25
from store.indexes.build import UnitIndex
from store.indexes.vectors import (
    APPROXIMATE_ABOVE,
    build_dense,
    dense_kind,
    exact_top,
    recall_at_k,
)
from tests.conftest import SHARED_DATA, need_shared

REQA = SHARED_DATA / "reqa-squad-dev"


def test_size_labels() -> None:
    assert [size_label(n) for n in (1_000_000, 20_000, 1_500)] == ["1m", "20k", "1500"]


def test_index_kind_follows_size_and_ivf_meets_recall_target() -> None:
    assert dense_kind(APPROXIMATE_ABOVE) == "flat"
    assert dense_kind(APPROXIMATE_ABOVE + 1) == "ivf"
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((200, 32)).astype(np.float32)
    vectors = centres[rng.integers(0, 200, 20_000)] + 0.3 * rng.standard_normal(
        (20_000, 32)
    ).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, info = build_dense(vectors, "ivf")
    assert info["kind"] == "ivf" and int(info["nprobe"]) >= 1
    queries = vectors[:50] + 0.1 * rng.standard_normal((50, 32)).astype(np.float32)
    truth = exact_top(vectors, queries, 10)
    # The build-time check said it reaches the target; independent queries agree.
    assert float(info["recall10_check"]) >= 0.95
    assert recall_at_k(index, queries, truth, vectors) >= 0.95
    flat, flat_info = build_dense(vectors[:100])
    assert flat_info["kind"] == "flat" and flat.ntotal == 100


def test_candidates_behind_an_ivf_are_scored_from_its_codes_close_to_exact() -> None:
    """An ask scores its candidates with vectors decoded from the IVF's 8-bit codes (no read
    of the float32 file); the cosines stay within 0.01 of exact and keep the best first,
    also after the index is written and read back as a saved store's is."""
    import faiss

    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((25_000, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, _ = build_dense(vectors, "ivf")
    reloaded = faiss.deserialize_index(faiss.serialize_index(index))
    n = len(vectors)
    for faiss_index in (index, reloaded):
        unit = UnitIndex(
            rowids=np.arange(n),
            article=np.zeros(n, dtype=np.int32),
            position=np.arange(n, dtype=np.int32),
            # The float32 file is not read: blanked here, the scores must still be right.
            vectors=np.zeros_like(vectors),
            bm25=BM25.build(["a"]),
            faiss_index=faiss_index,
        )
        keys = rng.choice(n, 300, replace=False)
        query = vectors[keys[0]]
        decoded = unit.rows(keys) @ query
        exact = vectors[keys] @ query
        assert np.abs(decoded - exact).max() < 0.01
        assert int(np.argmax(decoded)) == 0  # the query's own vector is still the best


def test_exact_top_matches_a_full_sort_across_blocks() -> None:
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((300_000, 8)).astype(np.float32)
    queries = rng.standard_normal((3, 8)).astype(np.float32)
    expected = np.argsort(-(queries @ vectors.T), axis=1)[:, :5]
    assert np.array_equal(exact_top(vectors, queries, 5), expected)


@pytest.mark.slow
def test_bench_json_has_every_figure_with_sane_values(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    need_shared(REQA)
    code = main(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "bench",
            "--passages",
            "30000",
            "--articles",
            "2",
            "--questions",
            "8",
            "--reqa",
            str(REQA),
            "--work-dir",
            str(tmp_path / "work"),
            "--json",
        ]
    )
    assert code == 0
    figures = json.loads(capsys.readouterr().out)
    for key in (
        "ingest_ratio",
        "ingest_sentences_per_s",
        "ingest_articles_per_s",
        "ask_ratio_10k",
        "ask_p50_ms_10k",
        "cold_ask_s",
        "warm_cli_ask_s",
        "ask_ratio_30k",
        "ask_p50_ms_30k",
        "ask_p95_ms_30k",
        "load_s_30k",
        "rss_mb_30k",
        "disk_mb_30k",
        "build_s_30k",
    ):
        value = figures[key]
        assert isinstance(value, float | int) and math.isfinite(value) and value > 0, key
    assert figures["ingest_articles"] >= 2 and figures["ingest_texts_embedded"] > 0
    assert 0.0 <= figures["recall10_30k"] <= 1.0
    assert 0.0 <= figures["recall10_10k"] <= 1.0
    # 10k passages stay exact; their sentences (~45k) are past the switch point.
    assert figures["probe_10k"]["passages_kind"] == "flat"
    assert figures["probe_10k"]["passages_recall10"] == 1.0
    assert figures["probe_10k"]["sentences_kind"] == "ivf"
    # `qabot ask` with `qabot serve` running prints what a fresh process prints.
    assert figures["warm_cli_same_answers"] is True
    assert figures["scale_passages"] == 30_000
    # 30k passages: both units past the switch point, so approximate indexes, recall-checked.
    assert figures["dense_30k"]["passages"]["kind"] == "ivf"
    assert figures["dense_30k"]["sentences"]["kind"] == "ivf"
    assert figures["dense_10k"]["passages"]["kind"] == "flat"
    assert figures["ask_p95_ms_30k"] >= figures["ask_p50_ms_30k"]
    assert figures["answered_10k"] > 0


def test_resident_server_gives_the_same_answer_as_asking_directly(tmp_path) -> None:
    import threading

    from bot.errors import BotError
    from bot.serve import ask_resident, make_server
    from retriever.retriever import Retriever
    from store.db import Store
    from store.ingest import Ingestor
    from store.models import RawArticle
    from tests.doubles import HashingEmbedder

    embedder = HashingEmbedder()
    store = Store(tmp_path / "qabot.sqlite3", model=embedder.name, dim=embedder.dim)
    Ingestor(store, embedder).ingest(
        [
            RawArticle(
                key="harbor.txt",
                title="Harbor bridge reopens",
                text="The harbor bridge reopened on Monday after two years of repairs. "
                "Deputy mayor Sam Lee was the first to cross it on a bicycle.\n\n"
                "The repairs cost 40 million dollars, the city said.",
                pre_cleaned=True,
            )
        ]
    )
    retriever = Retriever(store, embedder, tmp_path / "index")
    path = tmp_path / "qabot.sock"
    server = make_server(path, retriever)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        question = "Who was the first to cross the harbor bridge on a bicycle?"
        served = ask_resident(path, question, k=2, mode="bm25", collections=None)
        direct = retriever.ask(question, k=2, mode="bm25")
        assert served is not None
        assert served.model_dump(exclude={"timings"}) == direct.model_dump(exclude={"timings"})
        assert "Sam Lee" in served.answers[0].text
        with pytest.raises(BotError, match="question is empty"):
            ask_resident(path, "   ", k=2, mode="hybrid", collections=None)
    finally:
        server.shutdown()
        server.server_close()
    # Nobody listening any more: the caller answers by itself.
    assert ask_resident(path, "Who?", k=1, mode="hybrid", collections=None) is None
    assert (
        ask_resident(tmp_path / "none.sock", "Who?", k=1, mode="hybrid", collections=None) is None
    )


@pytest.mark.slow
def test_bench_on_qdrant_reports_its_figures_next_to_local_and_the_same_answers(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--backend qdrant` on a few hundred passages: the scale store on Qdrant's in-process
    engine, each figure beside the local one of the same run; at this size both searches
    are exact, so both backends answer every question alike."""
    need_shared(REQA)
    code = main(
        [
            "--data-dir",
            str(tmp_path / "data"),
            "bench",
            "--backend",
            "qdrant",
            "--passages",
            "300",
            "--articles",
            "1",
            "--questions",
            "20",
            "--reqa",
            str(REQA),
            "--work-dir",
            str(tmp_path / "work"),
            "--json",
        ]
    )
    assert code == 0
    figures = json.loads(capsys.readouterr().out)
    for key in (
        "build_s_300",
        "disk_mb_300",
        "rss_mb_300",
        "ask_p50_ms_300",
        "qdrant_build_s_300",
        "qdrant_disk_mb_300",
        "qdrant_disk_apparent_mb_300",
        "qdrant_load_s_300",
        "qdrant_rss_mb_300",
        "qdrant_ask_p50_ms_300",
        "qdrant_ask_p95_ms_300",
        "local_alt_ask_p50_ms_300",
        "local_alt_ask_p95_ms_300",
        "qdrant_ask_vs_local_300",
    ):
        value = figures[key]
        assert isinstance(value, float | int) and math.isfinite(value) and value > 0, key
    # Every unit row of the store became a point (plus one marker per article and meta).
    probe = figures["qdrant_probe_300"]
    assert probe["passages_n"] == 300
    assert probe["sentences_n"] == figures["sentences_300"]
    assert figures["qdrant_points_300"] == 300 + figures["sentences_300"]
    assert figures["qdrant_rss_mb_300"] > figures["qdrant_rss_base_mb_300"]
    assert figures["qdrant_disk_apparent_mb_300"] >= figures["qdrant_disk_mb_300"]
    for key in ("recall10_300", "qdrant_recall10_300"):
        assert 0.0 <= figures[key] <= 1.0, key
    # Exact search on both sides at 300 passages.
    assert figures["qdrant_recall10_300"] == 1.0
    assert figures["qdrant_same_top_answer_300"] == 1.0
    assert figures["qdrant_same_answers_300"] >= 0.9
    assert figures["qdrant_ask_p95_ms_300"] >= figures["qdrant_ask_p50_ms_300"]
    # The local-only steps Qdrant does not change are skipped.
    assert "ask_p50_ms_10k" not in figures and "cold_ask_s" not in figures
    assert figures["scale_passages"] == 300


def test_bench_refuses_a_store_too_small_to_measure(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--data-dir", str(tmp_path), "bench", "--backend", "qdrant", "--passages", "50"])
    assert code != 0
    err = capsys.readouterr().err
    assert "--passages 50 is too small to measure; use 100 or more" in err
    assert "Traceback" not in err
