"""Global options (`--data-dir`, `-v`) are taken before the command or after it, alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import build_parser, main

# Every command and subcommand, with the arguments it needs to parse.
COMMANDS = [
    ["ingest", "samples/articles"],
    ["ask", "Who led the bridge repair?"],
    ["list"],
    ["stats"],
    ["forget", "0123456789ab"],
    ["votes"],
    ["discord"],
    ["serve"],
    ["bench"],
    ["eval", "reqa"],
    ["eval", "cases", "samples/cases.jsonl"],
    ["feeds", "list"],
    ["feeds", "add", "https://news.example/rss.xml"],
    ["feeds", "remove", "https://news.example/rss.xml"],
    ["feeds", "sync"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("where", ["before", "after"])
def test_data_dir_and_verbose_parse_before_or_after_any_command(
    command: list[str], where: str, tmp_path: Path
) -> None:
    options = ["--data-dir", str(tmp_path), "-v"]
    argv = [*options, *command] if where == "before" else [*command, *options]
    args = build_parser().parse_args(argv)
    assert args.data_dir == tmp_path
    assert args.verbose is True


def test_options_default_when_given_nowhere() -> None:
    args = build_parser().parse_args(["stats"])
    assert args.data_dir is None
    assert args.verbose is False


def test_option_after_the_command_wins_over_one_before(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["--data-dir", "elsewhere", "list", "--data-dir", str(tmp_path)]
    )
    assert args.data_dir == tmp_path


def test_stats_uses_the_data_dir_given_after_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env_dir = tmp_path / "from-env"
    monkeypatch.setenv("QABOT_DATA_DIR", str(env_dir))
    mine = tmp_path / "mine"
    assert main(["stats", "--json", "--data-dir", str(mine)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert Path(stats["data_dir"]) == mine
    assert (mine / "qabot.sqlite3").exists()
    assert not env_dir.exists()


@pytest.mark.slow
def test_eval_reqa_refuses_a_data_dir_holding_other_articles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import PROJECT_SAMPLES, SHARED_DATA, need_shared

    reqa = need_shared(SHARED_DATA / "reqa-squad-dev")
    mine = tmp_path / "mine"
    assert main(["ingest", str(PROJECT_SAMPLES), "--data-dir", str(mine)]) == 0
    before = json.loads(_stats(mine, capsys))["articles"]
    code = main(["eval", "reqa", str(reqa), "--data-dir", str(mine), "--limit", "5"])
    err = capsys.readouterr().err
    assert code == 1
    assert "not the benchmark's" in err and "Traceback" not in err
    assert json.loads(_stats(mine, capsys))["articles"] == before  # nothing added to it


def _stats(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["stats", "--json", "--data-dir", str(data_dir)]) == 0
    return capsys.readouterr().out
