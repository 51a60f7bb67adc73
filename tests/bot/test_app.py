"""The wiring a running qabot uses: questions are embedded by the bundled model's numpy
runtime, so the bot and the terminal answer without importing torch, and the answers are
the ones the sentence-transformers model gives."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from retriever.retriever import Retriever
from store.db import Store

PROJECT_ROOT = Path(__file__).resolve().parents[2]

QUESTIONS = [
    "Who led the bridge repair?",
    "How much did the repairs cost?",
    "Which days will the central library open?",
]

ASK_IN_A_FRESH_PROCESS = """
import json, sys
from pathlib import Path
from bot.app import App
from bot.settings import Settings

app = App(Settings(_env_file=None, QABOT_DATA_DIR=sys.argv[1]))
answers = []
for question in json.loads(sys.argv[2]):
    answer = app.retriever.ask(question, k=3)
    answers.append([[a.text, a.score] for a in answer.answers])
loaded = sorted(m for m in ("torch", "sentence_transformers") if m in sys.modules)
print(json.dumps({"answers": answers, "loaded": loaded}))
"""


def test_questions_are_answered_without_torch_and_as_sentence_transformers_would(
    discord_store: Path, real_embedder
) -> None:  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [sys.executable, "-c", ASK_IN_A_FRESH_PROCESS, str(discord_store), json.dumps(QUESTIONS)],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
    )
    fresh = json.loads(done.stdout)
    assert fresh["loaded"] == []

    store = Store(discord_store / "qabot.sqlite3", model=real_embedder.name, dim=real_embedder.dim)
    try:
        retriever = Retriever(store, real_embedder, discord_store / "index")
        expected = [[[a.text, a.score] for a in retriever.ask(q, k=3).answers] for q in QUESTIONS]
    finally:
        store.close()
    assert [[t for t, _ in a] for a in fresh["answers"]] == [[t for t, _ in a] for a in expected]
    fresh_scores = [s for a in fresh["answers"] for _, s in a]
    assert fresh_scores == pytest.approx([s for a in expected for _, s in a], abs=1e-4)
    assert "Achebe" in expected[0][0][0]
