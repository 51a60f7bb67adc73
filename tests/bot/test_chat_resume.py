"""`qabot chat --resume NAME`: a terminal conversation kept in the store goes on where it
stopped, in a new `qabot chat`, with the real bundled model."""

from __future__ import annotations

import io
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.cli import main
from tests.bot.test_chat import CAIRO, DELIVERY, RUSSIA, VISIT, WHO
from tests.conftest import PROJECT_SAMPLES, SAMPLE_ARTICLE, need_shared

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("chat-resume")
    argv = ["--data-dir", str(data), "ingest", str(need_shared(SAMPLE_ARTICLE))]
    assert main([*argv, str(PROJECT_SAMPLES)]) == 0
    return data


def _chat(
    store: Path,
    lines: list[str],
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> list[str]:
    """What one `qabot chat -k 1 --resume NAME` prints for the lines typed, block by block."""
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(f"{x}\n" for x in lines)))
    assert main(["--data-dir", str(store), "chat", "-k", "1", "--resume", name]) == 0
    out = capsys.readouterr().out
    return [block for block in out.split("\n\n") if block.strip()]


def test_a_chat_resumed_by_name_follows_on_where_it_stopped(
    store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _chat(store, [WHO, RUSSIA], "libya", monkeypatch, capsys)
    assert first[0].startswith("(a new conversation, kept as libya)")
    assert DELIVERY in first[1]
    # A new `qabot chat` process: the follow-up leans on the two turns the store kept.
    again = _chat(store, [CAIRO], "libya", monkeypatch, capsys)
    assert again[0].startswith(f"(resuming libya: 2 earlier turns, the last {RUSSIA!r})")
    assert VISIT in again[0] and "El-Sisi" in again[0]
    # Another name is another conversation: nothing to lean on.
    other = _chat(store, [CAIRO], "harbor", monkeypatch, capsys)
    assert other[0].startswith("(a new conversation, kept as harbor)")
    assert VISIT not in other[0]
    # /new starts the kept one over.
    _chat(store, ["/new"], "libya", monkeypatch, capsys)
    fresh = _chat(store, [CAIRO], "libya", monkeypatch, capsys)
    assert fresh[0].startswith("(a new conversation, kept as libya)")
    assert VISIT not in fresh[0]


def test_a_bad_conversation_name_is_one_line(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--data-dir", str(store), "chat", "--resume", "my chat/1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: --resume 'my chat/1' is not a conversation name")
    assert "Traceback" not in err


def test_a_chat_untouched_for_the_conversation_days_is_forgotten(
    store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _chat(store, [WHO], "stale", monkeypatch, capsys)
    _chat(store, [WHO], "fresh", monkeypatch, capsys)
    with sqlite3.connect(store / "qabot.sqlite3") as db:  # "stale" was last asked 40 days ago
        db.execute(
            "UPDATE conversation_turns SET asked_at = ? WHERE conversation = 'chat:stale'",
            ((datetime.now(UTC) - timedelta(days=40)).isoformat(timespec="seconds"),),
        )
    monkeypatch.setenv("QABOT_CONVERSATION_DAYS", "30")
    stale = _chat(store, [RUSSIA], "stale", monkeypatch, capsys)
    assert stale[0].startswith("(a new conversation, kept as stale)")
    fresh = _chat(store, [RUSSIA], "fresh", monkeypatch, capsys)
    assert fresh[0].startswith(f"(resuming fresh: 1 earlier turn, the last {WHO!r})")
    assert DELIVERY in fresh[0]
