"""The answer checker: how its verdict joins the ranking and the confidence, the numpy model
on the question path, and the shipped weights read through numpy as training left them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retriever.checker import (
    CONFIG_FILE,
    SCALARS,
    WEIGHTS_FILE,
    AnswerChecker,
    CheckerReranker,
    Combination,
    answered,
    checker_shipped,
    combine,
)
from retriever.errors import CheckerError
from retriever.models import ABSTAIN_LEVELS
from retriever.rerank import MaxSimReranker
from retriever.retriever import Retriever, Weights
from store.db import Store
from store.ingest import Ingestor
from store.models import RawArticle
from tests.doubles import HashingEmbedder

LEVELS = (ABSTAIN_LEVELS["lenient"], ABSTAIN_LEVELS["balanced"], ABSTAIN_LEVELS["strict"])
needs_weights = pytest.mark.skipif(not checker_shipped(), reason="no trained checker shipped")


def test_the_checker_reorders_only_what_it_may_and_keeps_it_above_the_rest() -> None:
    c = Combination(2, 1.0, 1.0, (0.5, 0.6, 0.7), LEVELS)
    score = np.array([3.0, 2.9, 1.0, 2.0], dtype=np.float32)
    confidence = np.array([0.8, 0.8, 0.5, 0.7], dtype=np.float32)
    # Read best first: 0, 1, 3. The first is judged not to answer, the second to answer;
    # the third is past the depth it may reorder, however sure it is.
    combine(c, score, confidence, np.array([0, 1, 3]), np.array([-4.0, 4.0, 9.0]), 0.9)
    order = np.argsort(-score, kind="stable")
    assert list(order[:2]) == [1, 0]  # swapped
    assert score[[0, 1]].min() > score[[2, 3]].max()  # both still above the others
    assert score[3] == pytest.approx(2.0)


def test_the_probability_that_none_answers_lowers_the_confidence_abstention_reads() -> None:
    c = Combination(1, 0.0, 1.0, (0.5, 0.6, 0.7), LEVELS)
    found, none = (np.array([0.65, 0.4], dtype=np.float32) for _ in range(2))
    for conf, p in ((found, 0.95), (none, 0.05)):
        combine(c, np.array([2.0, 1.0], np.float32), conf, np.array([0]), np.zeros(1), p)
    assert found[0] >= ABSTAIN_LEVELS["balanced"] > none[0]


def test_logits_become_each_candidates_odds_and_the_chance_that_one_answers() -> None:
    odds, p = answered(np.array([0.0, 2.0, -1.0], dtype=np.float32))
    total = 1 + np.exp(2.0) + np.exp(-1.0)
    assert p == pytest.approx(1 - 1 / total)
    first = np.exp(2.0) / total
    assert odds[0] == pytest.approx(np.log(first / (1 - first)), abs=1e-5)
    assert odds[0] > 0 > odds[1]
    assert answered(np.array([9.0, -9.0, -9.0], dtype=np.float32))[1] < 0.001


def test_the_map_onto_the_levels_is_exact_at_its_knots_and_monotone_past_them() -> None:
    c = Combination(1, 0.0, 1.0, (0.40, 0.45, 0.55), LEVELS)
    mapped = c.calibrate(np.array([0.40, 0.45, 0.55, 0.30, 0.70, 0.5]))
    assert mapped[:3] == pytest.approx(LEVELS)
    assert mapped[3] < LEVELS[0] and mapped[4] > LEVELS[2]
    assert LEVELS[1] < mapped[5] < LEVELS[2]


def test_missing_weights_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(CheckerError, match=r"qabot train checker.*QABOT_CHECKER=off"):
        AnswerChecker(tmp_path)


def test_weights_of_the_old_kind_say_to_retrain(tmp_path: Path) -> None:
    (tmp_path / WEIGHTS_FILE).write_bytes(b"")
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"model": {"layers": 1}}))
    with pytest.raises(CheckerError, match=r"not an interaction checker.*qabot train checker"):
        AnswerChecker(tmp_path)


BODY = (
    "The bridge reopened on Monday after a two-year repair of all its cables. "
    "The repair of the bridge was long discussed by the council.\n\n"
    "The work on the bridge cost 48 million dollars, more than the city had planned."
)


def _store(tmp_path: Path, embedder: object, model: str, dim: int) -> Store:
    store = Store(tmp_path / "qabot.sqlite3", model=model, dim=dim)
    Ingestor(store, embedder).ingest(  # type: ignore[arg-type]
        [RawArticle(key="bridge", text=BODY, title="Harbour bridge", pre_cleaned=True)]
    )
    return store


def _checker_folder(folder: Path, dim: int, none_bias: float) -> Path:
    """A checker whose only say is its "none" bias: every candidate's logit is 0."""
    from safetensors.numpy import save_file

    h, r = 8, 4
    shapes = {
        "tq": (1,),
        "ts": (1,),
        "q.weight": (h, dim),
        "q.bias": (h,),
        "a.weight": (h, dim),
        "u.weight": (r, dim),
        "p.weight": (h, r),
        "c.weight": (h, 1),
        "f.weight": (h, 2),
        "gq.weight": (h, h),
        "gq.bias": (h,),
        "pq.weight": (1, h),
        "pq.bias": (1,),
        "s.weight": (h, dim),
        "s.bias": (h,),
        "b.weight": (h, dim),
        "sp.weight": (h, r),
        "sc.weight": (h, 1),
        "gs.weight": (h, h),
        "gs.bias": (h,),
        "qt.weight": (h, dim),
        "qt.bias": (h,),
        "o1.weight": (h, 3 * h + SCALARS),
        "o1.bias": (h,),
        "o2.weight": (1, h),
        "o2.bias": (1,),
        "none.weight": (1, h + 1),
        "none.bias": (1,),
    }
    tensors = {k: np.zeros(v, dtype=np.float32) for k, v in shapes.items()}
    tensors["none.bias"][0] = none_bias
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / WEIGHTS_FILE))
    config = {
        "model": {"kind": "interaction", "dim": dim, "candidates": 5, "max_pieces": 64},
        "combination": {
            "depth": 1,
            "rank_weight": 0.0,
            "confidence_weight": 4.0,
            "knots_from": list(LEVELS),
            "knots_to": list(LEVELS),
        },
    }
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    return folder


def test_a_checker_sure_that_nothing_answers_makes_the_question_declined(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    store = _store(tmp_path, embedder, "hashing-64", 64)
    weights = Weights()
    question = "How much did the work on the bridge cost?"

    def ask(none_bias: float) -> object:
        folder = _checker_folder(tmp_path / f"checker{none_bias}", embedder.dim, none_bias)
        checker = AnswerChecker(folder)
        retriever = Retriever(
            store,
            embedder,
            tmp_path / "index",
            weights=weights,
            reranker=CheckerReranker(checker, MaxSimReranker(weights)),
        )
        return retriever.ask(question, k=1)

    sure, doubtful = ask(-12.0), ask(12.0)
    assert not sure.abstained and "48 million" in sure.answers[0].text  # type: ignore[attr-defined]
    assert doubtful.abstained  # type: ignore[attr-defined]


def test_a_store_of_another_model_is_left_as_ranked(tmp_path: Path) -> None:
    embedder = HashingEmbedder()
    store = _store(tmp_path, embedder, "hashing-64", 64)
    weights = Weights()
    checker = AnswerChecker(_checker_folder(tmp_path / "c", 384, 12.0))  # a 384-d checker
    question = "How much did the work on the bridge cost?"
    plain = Retriever(store, embedder, tmp_path / "index", weights=weights)
    checked = Retriever(
        store,
        embedder,
        tmp_path / "index",
        weights=weights,
        reranker=CheckerReranker(checker, MaxSimReranker(weights)),
    )
    a, b = plain.ask(question, k=2), checked.ask(question, k=2)
    assert [x.text for x in a.answers] == [x.text for x in b.answers]
    assert [x.score for x in a.answers] == pytest.approx([x.score for x in b.answers])


@pytest.mark.slow
@needs_weights
def test_the_shipped_checker_on_the_road_keeps_the_answer_and_gives_its_score(
    tmp_path: Path,
    real_embedder,  # type: ignore[no-untyped-def]
) -> None:
    store = _store(tmp_path, real_embedder, real_embedder.name, real_embedder.dim)
    weights = Weights()
    checker = AnswerChecker()
    plain = Retriever(store, real_embedder, tmp_path / "index", weights=weights)
    checked = Retriever(
        store,
        real_embedder,
        tmp_path / "index",
        weights=weights,
        reranker=CheckerReranker(checker, MaxSimReranker(weights)),
    )
    question = "How much did the work on the bridge cost?"
    without, answer = plain.ask(question, k=1), checked.ask(question, k=1)
    assert not answer.abstained
    assert "48 million" in answer.answers[0].text
    # The score abstention reads is the checker's mix, not the MaxSim confidence.
    assert answer.answers[0].score != pytest.approx(without.answers[0].score, abs=1e-4)


@pytest.mark.slow
@needs_weights
def test_numpy_reads_the_weights_as_torch_trained_them() -> None:
    from retriever.checker_training import Group, TrainConfig, load_trained, torch_logits
    from store.indexes.tokens import TokenTable

    folder = Path(__file__).parents[2] / "retriever" / "data"
    config = TrainConfig(**json.loads((folder / CONFIG_FILE).read_text())["training"])
    rng = np.random.default_rng(0)
    dim, k = 384, 96
    projection = np.linalg.qr(rng.standard_normal((dim, k)))[0].astype(np.float32)
    tokens = rng.integers(-127, 127, size=(300, k)).astype(np.int8)
    table = TokenTable(tokens, np.array([0, 20, 55, 70, 130, 300]), projection, np.ones(9))
    question = rng.standard_normal((7, k)).astype(np.float32)
    question /= np.linalg.norm(question, axis=1, keepdims=True)
    group = Group(
        "q",
        True,
        True,
        question,
        np.stack([rng.random(7), rng.random(7) > 0.5], axis=1).astype(np.float32),
        rng.standard_normal(dim).astype(np.float32),
        np.arange(5),
        rng.standard_normal((5, SCALARS)).astype(np.float32),
        np.zeros(5, dtype=bool),
        np.zeros(5, np.float32),
        np.zeros(5, np.float32),
    )
    expected = torch_logits(load_trained(folder), group, table, config)
    from retriever.checker import sentence_tokens

    checker = AnswerChecker(folder)
    s, mask = sentence_tokens(table, group.positions, checker.max_pieces)
    got = checker.read(projection, question, group.features, group.vector, s, mask, group.scalars)
    assert got == pytest.approx(expected, abs=1e-4)


@pytest.mark.slow
@needs_weights
def test_the_checker_loads_and_reads_without_torch() -> None:
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from retriever.checker import SCALARS, AnswerChecker\n"
        "c = AnswerChecker()\n"
        "p = np.linalg.qr(np.random.default_rng(0).standard_normal((384, 96)))[0]\n"
        "q = np.ones((4, 96), np.float32) / np.sqrt(96)\n"
        "s = np.ones((3, 6, 96), np.float32) / np.sqrt(96)\n"
        "z = c.read(p, q, np.ones((4, 2), np.float32), np.ones(384, np.float32) / 20, s,\n"
        "           np.ones((3, 6), np.float32), np.zeros((3, SCALARS), np.float32))\n"
        "print(len(z), float(z[0]))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    count, none = done.stdout.split()
    assert int(count) == 4 and np.isfinite(float(none))
