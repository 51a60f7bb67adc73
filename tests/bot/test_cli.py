"""The `qabot` command driven through its entry point, with the real bundled model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from tests.conftest import PROJECT_SAMPLES, SAMPLE_ARTICLE, need_shared

pytestmark = pytest.mark.slow


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the real pasted article and the project's samples, built once."""
    data = tmp_path_factory.mktemp("data")
    assert (
        main(
            [
                "--data-dir",
                str(data),
                "ingest",
                str(need_shared(SAMPLE_ARTICLE)),
                str(PROJECT_SAMPLES),
            ]
        )
        == 0
    )
    return data


def test_ask_answers_with_the_exact_sentence_once_and_its_source(
    shared_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "--data-dir",
        str(shared_store),
        "ask",
        "--json",
        "Where did the Russian elite units land?",
    )
    assert code == 0
    answer = json.loads(out)
    assert answer["abstained"] is False
    first = answer["answers"][0]
    assert "air base of Sidi Barrani" in first["text"]
    assert first["article"]["title"] == "Russian elite units land on Egypt-Libya border"
    assert first["article"]["publisher"] == "DEBKA"
    assert first["article"]["published"] == "2017-03-14"
    assert sum("Sidi Barrani" in a["text"] for a in answer["answers"]) == 1
    text = SAMPLE_ARTICLE.read_text(encoding="utf-8")
    assert all(a["text"] in text for a in answer["answers"])  # quoted exactly
    assert set(answer["timings"]) >= {"embed", "search", "total"}


def test_ask_in_plain_text_names_the_source(
    shared_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "--data-dir",
        str(shared_store),
        "ask",
        "-k",
        "1",
        "Who",
        "led",
        "the",
        "bridge",
        "repair?",
    )
    assert code == 0
    assert "“The repair was led by Dr. Samuel K. Achebe of Northline Engineering.”" in out
    assert (
        "Harbor Bridge reopens after two-year repair, Riverside Courier, September 8, 2025" in out
    )


def test_fact_printed_by_two_articles_is_quoted_once_citing_both(
    shared_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(
        capsys,
        "--data-dir",
        str(shared_store),
        "ask",
        "--json",
        "When did the Harbor Bridge reopen?",
    )
    answers = json.loads(out)["answers"]
    reopened = [a for a in answers if "reopened to traffic on Monday" in a["text"]]
    assert len(reopened) == 1
    cited = {reopened[0]["article"]["title"]} | {s["title"] for s in reopened[0]["also_in"]}
    assert cited == {
        "Harbor Bridge reopens after two-year repair",
        "Library extends weekend opening hours",
    }


def test_unanswerable_question_abstains(
    shared_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "--data-dir",
        str(shared_store),
        "ask",
        "--json",
        "What is the boiling point of liquid nitrogen?",
    )
    assert code == 0
    answer = json.loads(out)
    assert answer["abstained"] is True and answer["answers"] == []
    _, out, _ = run(
        capsys,
        "--data-dir",
        str(shared_store),
        "ask",
        "What is the boiling point of liquid nitrogen?",
    )
    assert out.strip() == "I couldn't find that in the articles."


def test_abstain_setting_trades_answers_for_silence(
    shared_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A loose question: the landing sentence is about it, not clearly why. Balanced (the
    # default) declines it; lenient quotes it; strict declines even what balanced quotes.
    loose, vaguer = "Why did Russia send troops?", "What do the Russians want?"

    def abstains(question: str) -> bool:
        code, out, _ = run(capsys, "--data-dir", str(shared_store), "ask", "--json", question)
        assert code == 0
        return bool(json.loads(out)["abstained"])

    assert abstains(loose) and not abstains(vaguer)
    monkeypatch.setenv("QABOT_ABSTAIN", "lenient")
    assert not abstains(loose)
    monkeypatch.setenv("QABOT_ABSTAIN", "strict")
    assert abstains(vaguer)
    monkeypatch.setenv("QABOT_ABSTAIN", "0")
    assert not abstains("What is the weather like?")  # nothing is ever declined
    monkeypatch.setenv("QABOT_ABSTAIN", "picky")
    code, _, err = run(capsys, "--data-dir", str(shared_store), "ask", "anything?")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "QABOT_ABSTAIN" in err and "lenient, balanced, strict" in err


def test_a_running_serve_answers_with_the_askers_abstain_setting(
    shared_store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from bot.app import App
    from bot.serve import make_server, socket_path
    from bot.settings import load_settings

    # A server that would quote anything, asked by a `qabot ask` with its own setting.
    monkeypatch.setenv("QABOT_ABSTAIN", "0")
    settings = load_settings(data_dir=shared_store)
    app = App(settings)
    retriever = app.retriever
    lines: list[float | None] = []
    answer = retriever.ask

    def spy(*args: Any, **kwargs: Any) -> Any:
        lines.append(kwargs.get("abstain_below"))
        return answer(*args, **kwargs)

    monkeypatch.setattr(retriever, "ask", spy)
    server = make_server(socket_path(settings), retriever)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.delenv("QABOT_ABSTAIN")
        question = "What is the weather like?"
        code, out, _ = run(capsys, "--data-dir", str(shared_store), "ask", "--json", question)
        assert code == 0 and json.loads(out)["abstained"] is True
        monkeypatch.setenv("QABOT_ABSTAIN", "0")
        code, out, _ = run(capsys, "--data-dir", str(shared_store), "ask", "--json", question)
        assert code == 0 and json.loads(out)["abstained"] is False
    finally:
        server.shutdown()
        server.server_close()
        app.close()
    assert lines == [0.65, 0.0]  # both were answered by the server, each with its asker's line


def test_reingest_changes_nothing_and_list_stats_forget(
    shared_store: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys, "--data-dir", str(shared_store), "ingest", "--json", str(PROJECT_SAMPLES)
    )
    report = json.loads(out)
    assert code == 0 and report["added"] == [] and report["updated"] == []
    assert len(report["unchanged"]) == 4 and report["embedded"] == 0
    _, out, _ = run(capsys, "--data-dir", str(shared_store), "list")
    assert "Russian elite units land on Egypt-Libya border  [DEBKA, March 14, 2017" in out
    run(capsys, "--data-dir", str(shared_store), "ask", "Who led the bridge repair?")
    _, out, _ = run(capsys, "--data-dir", str(shared_store), "stats", "--json")
    stats = json.loads(out)
    assert stats["articles"] == 5 and stats["model"] == "all-MiniLM-L6-v2"
    # A store this small is searched exactly; stats says so, and over how many vectors.
    assert stats["sentences_index"] == f"exact over {stats['sentences']:,} vectors"
    assert stats["passages_index"] == f"exact over {stats['passages']:,} vectors"


def test_forget_then_ask_no_longer_quotes_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = str(tmp_path / "d")
    assert run(capsys, "--data-dir", data, "ingest", str(PROJECT_SAMPLES))[0] == 0
    code, out, _ = run(
        capsys,
        "--data-dir",
        data,
        "forget",
        "Volunteers plant a community orchard on the old rail yard",
    )
    assert code == 0 and "forgot" in out
    _, out, _ = run(
        capsys,
        "--data-dir",
        data,
        "ask",
        "--json",
        "How many fruit trees did the volunteers plant?",
    )
    assert all("orchard" not in a["article"]["title"] for a in json.loads(out)["answers"])


def test_errors_are_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "--data-dir", str(tmp_path / "empty"), "ask", "anything?")
    assert code == 1
    assert err.startswith("Error: no articles stored in") and "Traceback" not in err
    assert err.count("\n") == 1
    code, _, err = run(capsys, "--data-dir", str(tmp_path / "empty"), "forget", "nothing")
    assert code == 1 and "qabot list" in err and err.count("\n") == 1


def test_ingest_of_only_bad_files_fails_with_reasons(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00\x00garbage")
    code, out, err = run(capsys, "--data-dir", str(tmp_path / "d"), "ingest", str(bad))
    assert code == 1
    assert "skipped" in err and "binary file" in err
    assert "0 added" in out
