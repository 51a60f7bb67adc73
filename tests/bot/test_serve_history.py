"""`qabot serve` carries a conversation: a `history` in the request, the turns the answer
leaned on out. A real store and server with the deterministic embedder (fast)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.serve import ask_resident
from store.db import Store
from store.ingest import Ingestor
from store.models import RawArticle
from tests.bot.test_serve import Running, read_reply
from tests.doubles import HashingEmbedder
from tests.retriever.test_conversation import GRANT, OLSEN

FOLLOW_UP = "Where did she study engineering?"
RIGHT = "Olsen studied engineering in Delft before coming home."


@pytest.fixture
def people(tmp_path: Path) -> Iterator[Running]:
    embedder = HashingEmbedder()
    store = Store(tmp_path / "qabot.sqlite3", model=embedder.name, dim=embedder.dim)
    Ingestor(store, embedder).ingest(
        [
            RawArticle(key="grant", title="Peter Grant", text=GRANT, pre_cleaned=True),
            RawArticle(key="olsen", title="Maria Olsen", text=OLSEN, pre_cleaned=True),
        ]
    )
    store.close()
    running = Running(tmp_path)
    yield running
    running.stop()


def _ask(running: Running, question: str, history: list[object] | None) -> object:
    return ask_resident(
        running.path,
        question,
        k=1,
        mode="hybrid",
        collections=None,
        abstain=0.0,  # the bag-of-words embedder's confidences are low
        history=history,
    )


def test_a_history_of_questions_is_asked_again_and_the_follow_up_leans_on_it(
    people: Running,
) -> None:
    alone = _ask(people, FOLLOW_UP, None)
    assert alone.answers[0].text != RIGHT  # type: ignore[attr-defined]
    answer = _ask(people, FOLLOW_UP, ["Where was Maria Olsen born?"])
    assert answer.answers[0].text == RIGHT  # type: ignore[attr-defined]
    assert answer.context_used == (0,)  # type: ignore[attr-defined]
    assert answer.understood == "Where did Maria Olsen study engineering?"  # type: ignore[attr-defined]


def test_a_history_of_answers_as_ask_json_prints_them_is_taken_as_given(
    people: Running,
) -> None:
    first = _ask(people, "Where was Maria Olsen born?", None)
    turn = first.to_json_dict()  # type: ignore[attr-defined]
    answer = _ask(people, FOLLOW_UP, [turn])
    assert answer.answers[0].text == RIGHT  # type: ignore[attr-defined]
    assert answer.context_used == (0,)  # type: ignore[attr-defined]


def test_a_bad_history_is_refused_naming_the_item(people: Running) -> None:
    with people.connect() as s:
        request = {"question": FOLLOW_UP, "history": ["Who?", {"answers": []}]}
        s.sendall(json.dumps(request).encode() + b"\n")
        reply = read_reply(s)
    assert str(reply["error"]).startswith("bad request to qabot serve: history item 2 is not")
    with people.connect() as s:
        s.sendall(json.dumps({"question": FOLLOW_UP, "history": "Who?"}).encode() + b"\n")
        reply = read_reply(s)
    assert "history must be a list" in str(reply["error"])


def test_chat_talks_to_a_running_server_and_carries_the_conversation(
    people: Running, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`qabot chat` sends each question with the turns so far to `qabot serve` (here on the
    deterministic embedder, so no model is loaded: it would have nothing to answer with)."""
    import io

    from bot.cli import main

    monkeypatch.setenv("QABOT_ABSTAIN", "0")
    typed = "Where was Maria Olsen born?\nWhere did she study engineering?\n/new\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(typed + "Where did she study engineering?\n"))
    assert main(["--data-dir", str(people.folder), "chat", "-k", "1"]) == 0
    blocks = [b for b in capsys.readouterr().out.split("\n\n") if b.strip()]
    assert "Maria Olsen was born in Harwick" in blocks[0]
    assert blocks[1].startswith("(read as: Where did Maria Olsen study engineering?)")
    assert RIGHT in blocks[1]
    assert blocks[2].startswith("(a new conversation)") and RIGHT not in blocks[2]
