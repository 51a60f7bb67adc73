"""The answer checker: how its verdict joins the ranking and the confidence, and the shipped
weights read through numpy as training left them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retriever.checker import (
    AnswerChecker,
    CheckerReranker,
    Combination,
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


def test_the_checker_reorders_only_what_it_read_and_keeps_it_above_the_rest() -> None:
    c = Combination(2, 1.0, 1.0, (0.5, 0.6, 0.7), LEVELS)
    score = np.array([3.0, 2.9, 1.0, 2.0], dtype=np.float32)
    confidence = np.array([0.8, 0.8, 0.5, 0.7], dtype=np.float32)
    top = np.array([0, 1])
    # The first is judged not to answer, the second to answer.
    combine(c, score, confidence, top, np.array([-4.0, 4.0], dtype=np.float32))
    order = np.argsort(-score, kind="stable")
    assert order[0] == 1 and order[1] == 0  # swapped
    assert score[[0, 1]].min() > score[[2, 3]].max()  # both still above those not read
    assert confidence[1] > confidence[0]


def test_a_rejected_best_candidate_lowers_the_confidence_abstention_reads() -> None:
    c = Combination(1, 1.0, 1.0, (0.5, 0.6, 0.7), LEVELS)
    answered, rejected = (
        np.array([0.65, 0.4], dtype=np.float32),
        np.array([0.65, 0.4], dtype=np.float32),
    )
    scores = [np.array([2.0, 1.0], dtype=np.float32) for _ in range(2)]
    combine(c, scores[0], answered, np.array([0]), np.array([5.0], dtype=np.float32))
    combine(c, scores[1], rejected, np.array([0]), np.array([-5.0], dtype=np.float32))
    assert answered[0] >= ABSTAIN_LEVELS["balanced"] > rejected[0]


def test_the_map_onto_the_levels_is_exact_at_its_knots_and_monotone_past_them() -> None:
    c = Combination(1, 0.0, 1.0, (0.40, 0.45, 0.55), LEVELS)
    mapped = c.calibrate(np.array([0.40, 0.45, 0.55, 0.30, 0.70, 0.5]))
    assert mapped[:3] == pytest.approx(LEVELS)
    assert mapped[3] < LEVELS[0] and mapped[4] > LEVELS[2]
    assert LEVELS[1] < mapped[5] < LEVELS[2]


def test_missing_weights_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(CheckerError, match=r"qabot train checker.*QABOT_CHECKER=off"):
        AnswerChecker(tmp_path)


BODY = (
    "The bridge reopened on Monday after a two-year repair of all its cables. "
    "The repair of the bridge was long discussed by the council.\n\n"
    "The work on the bridge cost 48 million dollars, more than the city had planned."
)


@pytest.mark.slow
@needs_weights
def test_the_shipped_checker_on_the_road_keeps_the_answer_and_gives_its_score(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "qabot.sqlite3", model="hashing-64", dim=64)
    embedder = HashingEmbedder()
    Ingestor(store, embedder).ingest(
        [RawArticle(key="bridge", text=BODY, title="Harbour bridge", pre_cleaned=True)]
    )
    weights = Weights()
    checker = AnswerChecker()
    plain = Retriever(store, embedder, tmp_path / "index", weights=weights)
    checked = Retriever(
        store,
        embedder,
        tmp_path / "index",
        weights=weights,
        reranker=CheckerReranker(checker, MaxSimReranker(weights)),
    )
    question = "How much did the work on the bridge cost?"
    without, answer = plain.ask(question, k=1), checked.ask(question, k=1)
    assert not answer.abstained
    assert "48 million" in answer.answers[0].text
    # The score abstention reads is the checker's mix, not the MaxSim confidence.
    text = answer.answers[0].text
    logit = float(checker.logits(question, [text])[0])
    c = checker.combination
    p = 1.0 / (1.0 + np.exp(-logit))
    mixed = (without.answers[0].score + c.confidence_weight * p) / (1 + c.confidence_weight)
    assert answer.answers[0].score == pytest.approx(
        float(c.calibrate(np.array([mixed]))[0]), abs=1e-4
    )


@pytest.mark.slow
@needs_weights
def test_numpy_reads_the_weights_as_torch_trained_them() -> None:
    from retriever.checker_training import load_trained, torch_logits
    from store.embedding import bundled_model_path

    folder = Path(__file__).parents[2] / "retriever" / "data"
    question = "Who was the first to cross the bridge?"
    sentences = [
        "Mayor Lena Ortiz was the first to cross the bridge on a bicycle.",
        "The bridge reopened on Monday after a two-year repair of all its cables.",
    ]
    model = load_trained(folder, bundled_model_path())
    expected = torch_logits(model, bundled_model_path(), question, sentences)
    got = AnswerChecker(folder).logits(question, sentences)
    assert got == pytest.approx(expected, abs=1e-3)


@pytest.mark.slow
@needs_weights
def test_the_checker_loads_and_answers_without_torch() -> None:
    code = (
        "import sys\n"
        "from retriever.checker import AnswerChecker\n"
        "print(AnswerChecker().logits('Who won?', ['The Broncos won the game.'])[0])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    float(done.stdout.strip())
