"""qabot on PostgreSQL (QABOT_DATABASE_URL), through its entry point: the store it opens,
what `qabot stats` says of it, and one line naming the database, password masked, when the
database is down. The bundled model's size is known, so none of this loads a model."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from bot.app import App
from bot.cli import main
from bot.errors import SettingsError
from bot.settings import load_settings
from store.postgres import PostgresStore

# A server that is not there: a socket folder nobody listens in, and a password to mask.
DOWN = "postgresql://qabot:s3cret-pw@/qabot?host=/nonexistent/qabot-socket-dir"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_app_keeps_its_store_in_the_database_the_url_names(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QABOT_DATABASE_URL", postgres_url)
    app = App(load_settings(data_dir=tmp_path))
    assert isinstance(app.store, PostgresStore)
    assert not (tmp_path / "qabot.sqlite3").exists()  # nothing of the store in the folder
    app.close()
    code, out, _ = run(capsys, "--data-dir", str(tmp_path), "stats", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["store"].startswith("postgresql at postgresql://")
    assert stats["postgresql"].startswith("answering; PostgreSQL 18")
    assert stats["articles"] == 0 and stats["model"] == "all-MiniLM-L6-v2"
    code, out, _ = run(capsys, "--data-dir", str(tmp_path), "list")
    assert code == 0 and "No articles stored yet" in out


def test_a_database_that_is_down_is_one_line_naming_it_without_its_password(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("QABOT_DATABASE_URL", DOWN)
    code, _, err = run(capsys, "--data-dir", str(tmp_path), "list")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        "Error: the PostgreSQL database at "
        "postgresql://qabot:***@/qabot?host=%2Fnonexistent%2Fqabot-socket-dir is not answering"
    )
    assert "QABOT_DATABASE_URL" in err
    code, out, _ = run(capsys, "--data-dir", str(tmp_path), "stats", "--json")
    stats = json.loads(out)
    assert code == 1 and stats["store"] == "postgresql"
    assert stats["postgresql"].startswith("NOT ANSWERING: the PostgreSQL database at")
    assert "s3cret-pw" not in err + out + caplog.text


def test_a_url_that_is_not_postgresql_is_refused_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QABOT_DATABASE_URL", "mysql://db.example/qabot")
    with pytest.raises(SettingsError, match=r"postgresql://user:password@host:5432/database"):
        load_settings()


def test_the_bots_writer_is_a_second_connection_to_the_same_database(
    postgres_url: str, tmp_path: Path
) -> None:
    """What the Discord bot's /ingest and feed syncs write through (`writer_for`) is
    answered by its retriever, which reads on its own connection."""
    from bot.app import writer_for
    from retriever.retriever import Retriever
    from retriever.weights import Weights
    from store.models import RawArticle
    from tests.doubles import HashingEmbedder

    embedder = HashingEmbedder()
    store = PostgresStore(postgres_url, model=embedder.name, dim=embedder.dim)
    retriever = Retriever(store, embedder, tmp_path / "index", weights=Weights(abstain_below=0))
    writer, ingestor = writer_for(retriever)
    assert isinstance(writer, PostgresStore) and writer is not store
    assert writer.url == store.url
    ingestor.ingest(
        [
            RawArticle(
                key="k", title="Mill", text="The mill grinds oats on Tuesdays.", pre_cleaned=True
            )
        ]
    )
    answer = retriever.ask("What does the mill grind?", k=1)
    assert answer.answers[0].text == "The mill grinds oats on Tuesdays."
    writer.close()
    store.close()
