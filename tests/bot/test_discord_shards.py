"""The Discord bot run as two discord.py shards, each its own OS process, on one PostgreSQL.

Each process is `tests/bot/shard_process.py`: the real `App` and bot (discord.py's
AutoShardedBot on QABOT_DISCORD_SHARD=0/2 and 1/2, the real model), driven through a
simulated Discord by simcord. simcord keeps its Discord inside the bot's own event loop, so
each process has one of its own; both hold the same two servers, one owned by each shard,
mapped to one collection (DISCORD_COLLECTIONS), as two servers that share a library would
be. What the processes share is what a deployment shares: the database (the embedded
PostgreSQL 18 server these tests start).

"One Qdrant" for both is not tested here: that needs a Qdrant server, which cannot run on
this machine, and Qdrant's in-process engine (qdrant-edge) serves one process per folder.
So each process keeps its own local indexes (its own data folder, as on two machines),
built from the shared store and brought up to date from it by the store's generation.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.discord_format import BACKEND_DOWN_REPLY
from tests.bot.shard_process import GUILDS
from tests.conftest import PROJECT_SAMPLES
from tests.engines import PostgresServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "Who led the repair of the Harbor Bridge?"
ACHEBE = "“The repair was led by Dr. Samuel K. Achebe of Northline Engineering."
COLLECTION = "harbor-library"


class ShardProcess:
    """One bot process running shard `shard` of 2, and the simulated Discord around it."""

    def __init__(self, shard: int, data_dir: Path, env: dict[str, str]) -> None:
        self.shard = shard
        self.guild = GUILDS[shard]
        self.log = data_dir.with_suffix(".log")
        env = {**env, "QABOT_DATA_DIR": str(data_dir), "QABOT_DISCORD_SHARD": f"{shard}/2"}
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.bot.shard_process"],
                env=env,
                cwd=data_dir.parent,  # no .env of the checkout's
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            raise AssertionError(
                f"shard {self.shard} said nothing in {timeout:.0f} s; its log:\n"
                + self.log.read_text()[-3000:]
            )
        return json.loads(line)  # type: ignore[no-any-return]

    def ready(self) -> list[int]:
        """The servers this shard's bot receives, once it is up."""
        said = self._read(300)
        assert said.get("ready"), said
        return list(said["guilds"])

    def send(self, do: str, **request: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"do": do, "guild": self.guild, **request}) + "\n")
        self.proc.stdin.flush()

    def reply(self, timeout: float = 300) -> str:
        """The text of the bot's reply to the last request (`buttons`: how many it bears)."""
        said = self._read(timeout)
        assert "reply" in said, f"shard {self.shard}: {said}"
        self.buttons = int(said["buttons"])
        return str(said["reply"])

    def do(self, do: str, **request: Any) -> str:
        self.send(do, **request)
        return self.reply()

    def close(self) -> int:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.close()  # the bot logs out, simcord checks it raised nothing
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def _reports(folder: Path, count: int, sentences: int) -> Path:
    """A JSON-lines file of `count` articles of `sentences` sentences each, to be killed in."""
    path = folder / "quay-reports.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            text = " ".join(
                f"Inspector {j} of quay report {i} counted {i * 1000 + j * 7 + 3} crates "
                f"beside berth {j % 9 + 1}."
                for j in range(sentences)
            )
            out.write(json.dumps({"title": f"Quay report {i}", "text": text}) + "\n")
    return path


def _counts(url: str) -> dict[str, int]:
    """Sentences stored for each quay report, read straight from the database."""
    with psycopg.connect(url, autocommit=True) as db:
        rows = db.execute(
            "SELECT a.title, COUNT(s.id) FROM articles a LEFT JOIN sentences s"
            " ON s.article_id = a.id WHERE a.title LIKE 'Quay report %' GROUP BY a.title"
        ).fetchall()
    return {title: n for title, n in rows}


def test_two_shard_processes_on_one_database(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "QABOT_DATABASE_URL": postgres_url,
        "DISCORD_COLLECTIONS": json.dumps({str(g): COLLECTION for g in GUILDS.values()}),
        "QABOT_FEED_SYNC_MINUTES": "0",
        "QABOT_COOLDOWN_QUESTIONS": "100",
    }
    a = ShardProcess(0, tmp_path / "machine-a", env)
    b = ShardProcess(1, tmp_path / "machine-b", env)
    try:
        # Each shard receives the server it owns, and only that one.
        assert a.ready() == [GUILDS[0]]
        assert b.ready() == [GUILDS[1]]

        added = a.do("ingest", file=str(PROJECT_SAMPLES / "city-news.jsonl"))
        assert added.startswith("Added: “Library extends weekend opening hours”"), added
        before = b.do("ask", question=QUESTION)  # B's indexes are built from the store now
        assert ACHEBE not in before and "Harbor Bridge" in before

        # An article ingested through shard 0 answers through shard 1 within 5 s.
        bridge = PROJECT_SAMPLES / "harbor-bridge-reopens.txt"
        added = a.do("ingest", file=str(bridge))
        assert added == "Added: “Harbor Bridge reopens after two-year repair”", added
        started = time.monotonic()
        after = b.do("ask", question=QUESTION)
        took = time.monotonic() - started
        assert after.startswith(f"**1.** {ACHEBE}"), after
        assert took < 5, f"shard 1 answered after {took:.1f} s"
        assert b.buttons == 2  # 👍 / 👎, on the answer recorded in the database
        assert a.do("ask", question=QUESTION).startswith(f"**1.** {ACHEBE}")

        # The database restarts under both. While it is down, what needs it says so in
        # Discord; questions are answered from the indexes each process holds, without
        # vote buttons (there is no record of the answer to vote on)...
        postgres_server.go_down()
        try:
            ingest_down = b.do("ingest", file=str(bridge))
            asked_down = [(a.do("mention", question=QUESTION), a.buttons)]
            asked_down.append((b.do("ask", question=QUESTION), b.buttons))
        finally:
            postgres_server.come_back()
        assert ingest_down == BACKEND_DOWN_REPLY
        for text, buttons in asked_down:
            assert text.startswith(f"**1.** {ACHEBE}") and buttons == 0, (text, buttons)
        # ... and once it is back, both answer again, votes and all.
        for shard in (a, b):
            again = shard.do("ask", question=QUESTION)
            assert again.startswith(f"**1.** {ACHEBE}"), (shard.shard, again)
            assert shard.buttons == 2

        # Shard 0 is killed in the middle of an ingest: the shared store holds whole
        # articles only, and shard 1 carries on writing and answering.
        sentences = 40
        a.send("ingest", file=str(_reports(tmp_path, 60, sentences)))
        deadline = time.monotonic() + 300
        while not _counts(postgres_url):
            assert time.monotonic() < deadline, "shard 0 stored no report in 300 s"
            assert a.proc.poll() is None, a.log.read_text()[-3000:]
            time.sleep(0.02)
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(30)
        stored = _counts(postgres_url)
        assert 0 < len(stored) < 60, f"{len(stored)} reports: the ingest was not cut short"
        assert set(stored.values()) == {sentences}, stored  # none half-written
        with psycopg.connect(postgres_url, autocommit=True) as db:
            orphans = db.execute(
                "SELECT COUNT(*) FROM sentences s LEFT JOIN vectors v ON v.hash = s.vec_hash"
                " WHERE v.hash IS NULL"
            ).fetchone()
        assert orphans == (0,)
        ferry = tmp_path / "ferry-timetable.txt"
        ferry.write_text(
            "Ferry timetable changes\n\nThe Kerr Point ferry will leave at 6:40 a.m. from "
            "November, twenty minutes earlier than now.\n",
            encoding="utf-8",
        )
        started = time.monotonic()  # the killed writer's lock went with its connection
        assert b.do("ingest", file=str(ferry)) == "Added: “Ferry timetable changes”"
        assert time.monotonic() - started < 30
        ferry_answer = b.do("ask", question="When will the Kerr Point ferry leave?")
        assert ferry_answer.startswith("**1.** “The Kerr Point ferry will leave at 6:40"), (
            ferry_answer
        )
        report = b.do("ask", question="How many crates did inspector 5 of quay report 0 count?")
        assert "“Inspector 5 of quay report 0 counted 38 crates beside berth 6.”" in report
        assert b.close() == 0, b.log.read_text()[-3000:]
    finally:
        for shard in (a, b):
            if shard.proc.poll() is None:
                shard.proc.kill()
                shard.proc.wait()
