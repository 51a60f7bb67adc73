"""Two qabot processes on one PostgreSQL database, each with a data folder of its own (as on
two machines), through the real command line and the real model: an article one ingests is
answered by the other, a `qabot serve` that was already answering, within 5 s."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.serve import SOCKET_NAME, ask_resident
from tests.conftest import PROJECT_SAMPLES

pytestmark = pytest.mark.slow


def _qabot(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "--data-dir", str(data_dir), *args]


def test_an_article_ingested_by_one_process_is_answered_by_another_within_5_s(
    postgres_url: str, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "QABOT_DATABASE_URL": postgres_url}
    first, second = tmp_path / "machine-a", tmp_path / "machine-b"
    library = PROJECT_SAMPLES / "city-news.jsonl"
    run = subprocess.run(_qabot(first, "ingest", str(library)), env=env, capture_output=True)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    serve = subprocess.Popen(_qabot(second, "serve"), env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stderr is not None
        line = serve.stderr.readline()
        while "serving" not in line:
            assert line, f"qabot serve stopped: {serve.stderr.read()[-2000:]}"
            line = serve.stderr.readline()
        socket = second / SOCKET_NAME
        question = "Who led the repair of the Harbor Bridge?"
        before = ask_resident(socket, question, k=1, mode="hybrid", collections=None)
        assert before is not None  # answered by the serving process
        assert all("Achebe" not in a.text for a in before.answers)
        run = subprocess.run(
            _qabot(first, "ingest", str(PROJECT_SAMPLES / "harbor-bridge-reopens.txt")),
            env=env,
            capture_output=True,
        )
        assert run.returncode == 0, run.stderr.decode()[-2000:]
        started = time.monotonic()
        after = ask_resident(socket, question, k=1, mode="hybrid", collections=None)
        took = time.monotonic() - started
        assert after is not None and "Samuel K. Achebe" in after.answers[0].text
        assert took < 5, f"answered after {took:.1f} s"
    finally:
        serve.terminate()
        serve.wait(30)
