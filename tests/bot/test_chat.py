"""Conversations through the `qabot` entry point with the real bundled model: `qabot chat`
driven through stdin, and `qabot ask --json --history`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bot.cli import main
from tests.conftest import PROJECT_SAMPLES, SAMPLE_ARTICLE, need_shared

pytestmark = pytest.mark.slow

WHO = "Who is Khalifa Hafter?"
RUSSIA = "What has his army received from Russia?"
CAIRO = "Whom did he meet in Cairo?"
DELIVERY = "His LNA has taken delivery of Russian fighter jets and tanks"
VISIT = "the Libyan general visited Cairo to discuss the details of cooperation"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real pasted article and the project's samples, stored once."""
    data = tmp_path_factory.mktemp("chat")
    argv = ["--data-dir", str(data), "ingest", str(need_shared(SAMPLE_ARTICLE))]
    assert main([*argv, str(PROJECT_SAMPLES)]) == 0
    return data


def _chat(
    store: Path,
    lines: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> list[str]:
    """What `qabot chat -k 1` prints for each line typed, answer by answer."""
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{x}\n" for x in lines)))
    assert main(["--data-dir", str(store), "chat", "-k", "1"]) == 0
    out = capsys.readouterr().out
    return [block for block in out.split("\n\n") if block.strip()]


def test_chat_answers_both_follow_ups_with_the_right_sentences(
    store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = _chat(store, [WHO, RUSSIA, CAIRO, "/new", CAIRO], monkeypatch, capsys)
    assert "Khalifa Hafter" in blocks[0]
    assert DELIVERY in blocks[1]
    assert "— Russian elite units land on Egypt-Libya border, DEBKA" in blocks[1]
    assert VISIT in blocks[2] and "El-Sisi" in blocks[2]
    assert blocks[1].startswith("(read as: ")
    # After /new the same question has nothing to lean on.
    assert blocks[3].startswith("(a new conversation)")
    assert VISIT not in blocks[3]


def test_ask_json_takes_the_history_and_says_what_it_leaned_on(
    store: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["--data-dir", str(store), "ask", "--json", WHO]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["context_used"] == [] and first["understood"] is None
    history = tmp_path / "conversation.jsonl"
    history.write_text(json.dumps(first) + "\n", encoding="utf-8")
    assert main(["--data-dir", str(store), "ask", "--json", "--history", str(history), RUSSIA]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert DELIVERY in answer["answers"][0]["text"]
    assert answer["context_used"] == [0]
    # the history as plain earlier questions: asked again in order
    history.write_text(json.dumps([WHO, RUSSIA]), encoding="utf-8")
    assert main(["--data-dir", str(store), "ask", "--json", "--history", str(history), CAIRO]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert VISIT in answer["answers"][0]["text"]
    assert answer["context_used"] == [0, 1]


def test_a_bad_history_file_is_one_line_naming_it(
    store: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    history = tmp_path / "h.jsonl"
    history.write_text('"Who is Khalifa Hafter?"\n{oops\n', encoding="utf-8")
    assert main(["--data-dir", str(store), "ask", "--history", str(history), RUSSIA]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: the history {history} line 2 is not JSON")
    assert "Traceback" not in err
