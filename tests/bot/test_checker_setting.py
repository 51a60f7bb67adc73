"""QABOT_CHECKER: the answer checker on or off, and `qabot train checker`'s bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import App
from bot.cli import main
from bot.errors import SettingsError
from bot.settings import load_settings
from retriever.checker import CheckerReranker, checker_shipped
from retriever.rerank import MaxSimReranker


def test_the_checker_setting_picks_the_rerank(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QABOT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QABOT_CHECKER", "off")
    app = App(load_settings())
    assert type(app.retriever.reranker) is MaxSimReranker
    app.close()
    if checker_shipped():
        monkeypatch.setenv("QABOT_CHECKER", "on")
        app = App(load_settings())
        assert isinstance(app.retriever.reranker, CheckerReranker)
        app.close()


def test_a_checker_setting_that_is_not_on_or_off_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QABOT_CHECKER", "maybe")
    with pytest.raises(SettingsError, match=r"QABOT_CHECKER: .maybe. is not on or off"):
        load_settings()


def test_training_without_the_benchmark_says_where_it_looked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["--data-dir", str(tmp_path), "train", "checker", "--reqa", str(tmp_path / "no")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("Error: no ReQA folder at") and err.count("\n") == 1
