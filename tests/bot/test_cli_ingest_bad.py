"""`qabot ingest` of a batch mixing good files with hostile ones, through the entry point.

Each bad input gets one line naming it (made safe to print) and what to do; the good files
of the same batch are stored; no traceback; bad metadata is dropped, not stored as written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bot.cli import main

pytestmark = pytest.mark.slow

BODY = (
    "The bridge reopened on Monday after a two-year repair of all its cables. "
    "The work cost 48 million dollars, more than the city had planned.\n\n"
    "Mayor Lena Ortiz was the first to cross the bridge on a bicycle."
)
OTHER = (
    "The harbor ferry will run every twenty minutes from the first of June onward. "
    "Its new engines burn a third less fuel than the old ones, the operator said."
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _batch(folder: Path) -> dict[str, str]:
    """Write the batch; returns each bad file's name as it must be shown (escaped)."""
    folder.mkdir()
    (folder / "good.txt").write_text("Good title\n\n" + BODY, encoding="utf-8")
    (folder / "utf16.txt").write_bytes(("Sixteen bit title\n\n" + OTHER).encode("utf-16"))
    # Lone surrogates, as JSON escapes, in the text, the title and the metadata.
    (folder / "surrogate.json").write_text(
        json.dumps(
            {
                "title": "Surrogate \ud800 title",
                "text": "A JSON article holds a lone surrogate \udfff here and says enough.",
                "publisher": "Pub \ud800",
            }
        ),
        encoding="ascii",
    )
    (folder / "meta.json").write_text(
        json.dumps(
            {
                "title": "Headline words " * 8000,  # 120 KB
                "text": "A story with a bell\x07 and an \x1b[31mescape\x1b[0m in its text, ok.",
                "published": "[Official statement](https://evil.example/login)",
                "url": "javascript:alert(1)",
                "publisher": "Evil\nskipped forged: line",
                "author": "A" * 5000,
            }
        ),
        encoding="utf-8",
    )
    bad = {}
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    bad["deep.json"] = "deep.json"
    (folder / "late-nul.txt").write_bytes(
        b"Late NUL title\n\n" + ("word " * 3000).encode() + b"\x00\x00 more"
    )
    bad["late-nul.txt"] = "late-nul.txt"
    forged = "forged\n1 added, 0 updated.txt"
    (folder / forged).write_text("  \n", encoding="utf-8")
    bad[forged] = "forged\\n1 added, 0 updated.txt"
    ansi = "\x1b[2Jansi.txt"
    (folder / ansi).write_text("", encoding="utf-8")
    bad[ansi] = "\\x1b[2Jansi.txt"
    os.mkfifo(folder / "pipe.txt")  # opening it would block the ingest forever
    bad["pipe.txt"] = "pipe.txt"
    (folder / "self-loop.txt").symlink_to(folder / "self-loop.txt")
    bad["self-loop.txt"] = "self-loop.txt"
    return bad


def test_a_batch_with_hostile_files_stores_the_good_ones_and_names_each_bad_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = _batch(tmp_path / "in")
    data = str(tmp_path / "d")
    code, out, err = run(capsys, "--data-dir", data, "ingest", str(tmp_path / "in"))
    assert code == 0, err
    assert "Traceback" not in err and "Traceback" not in out
    assert "\x1b" not in out + err
    lines = err.splitlines()
    for name, shown in bad.items():
        naming = [line for line in lines if shown in line]
        assert len(naming) == 1, (name, lines)
        assert naming[0].startswith("skipped ")
    assert len(lines) == len(bad), lines  # nothing else: no forged line, no traceback
    assert out.startswith("4 added, 0 updated, 0 unchanged, 6 skipped"), out

    code, out, _ = run(capsys, "--data-dir", data, "list", "--json")
    stored = {a["title"][:12]: a for a in map(json.loads, out.splitlines())}
    assert set(stored) == {"Good title", "Sixteen bit ", "Surrogate \ufffd ", "Headline wor"}
    surrogate = stored["Surrogate \ufffd "]
    assert surrogate["title"] == "Surrogate \ufffd title" and surrogate["publisher"] == "Pub \ufffd"
    meta = stored["Headline wor"]
    assert len(meta["title"]) <= 300 and meta["title"].split()[-1] in ("Headline", "words")
    assert meta["published"] is None and meta["url"] is None
    assert "\n" not in meta["publisher"] and len(meta["author"]) <= 200
    # The text quoted back has no control characters left in it.
    code, out, _ = run(capsys, "--data-dir", data, "ask", "--json", "What is in the story?")
    texts = [a["text"] for a in json.loads(out)["answers"]]
    assert all("\x07" not in t and "\x1b" not in t for t in texts)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file and folder")
def test_unreadable_folder_and_file_are_each_one_skip_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    (folder / "locked").mkdir(parents=True)
    (folder / "locked" / "inside.txt").write_text("Inside\n\n" + BODY, encoding="utf-8")
    (folder / "good.txt").write_text("Good title\n\n" + BODY, encoding="utf-8")
    (folder / "secret.txt").write_text("Secret\n\n" + OTHER, encoding="utf-8")
    (folder / "secret.txt").chmod(0)
    (folder / "locked").chmod(0)
    try:
        code, out, err = run(capsys, "--data-dir", str(tmp_path / "d"), "ingest", str(folder))
    finally:
        (folder / "locked").chmod(0o755)
    assert code == 0 and out.startswith("1 added")
    assert next(line for line in err.splitlines() if "locked" in line).startswith("skipped")
    assert next(line for line in err.splitlines() if "secret.txt" in line).startswith("skipped")
    assert len(err.splitlines()) == 2
