"""Reading files that are not what they seem, and metadata that is not what it claims.

Each bad input is one SkipSource naming it with what to do; the good ones still load; and
every RawArticle, whatever built it, holds only fields that are safe to store and print.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from store.db import Store
from store.errors import SkipSource
from store.ingest import Ingestor
from store.models import RawArticle, printable
from store.sources.files import find_files, load_file
from tests.doubles import HashingEmbedder

BODY = (
    "The bridge reopened on Monday after a two-year repair of all its cables. "
    "The work cost 48 million dollars, more than the city had planned."
)


def load(folder: Path) -> tuple[list[RawArticle], dict[str, str]]:
    """Every article under `folder`, and each skip's reason by its file name."""
    articles: list[RawArticle] = []
    skipped: dict[str, str] = {}
    for found in find_files(folder):
        for item in [found] if isinstance(found, SkipSource) else load_file(found):
            if isinstance(item, SkipSource):
                assert Path(item.source).name not in skipped, item  # one line each
                skipped[Path(item.source).name] = item.reason
            else:
                articles.append(item)
    return articles, skipped


def test_deep_json_and_lone_surrogates_do_not_stop_the_batch(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    (tmp_path / "deep.jsonl").write_text(
        json.dumps({"title": "Fine", "text": BODY}) + "\n" + "[" * 50_000 + "\n", "utf-8"
    )
    (tmp_path / "sur.json").write_text(
        json.dumps({"title": "A \ud800 title", "text": BODY + " \udfff", "author": "\ud83d"}),
        encoding="ascii",
    )
    articles, skipped = load(tmp_path)
    assert "nested too deeply" in skipped["deep.json"]
    assert "nested too deeply" in skipped["deep.jsonl:2"]
    by_title = {a.title: a for a in articles}
    assert set(by_title) == {"Fine", "A \ufffd title"}
    sur = by_title["A \ufffd title"]
    assert sur.text.endswith("\ufffd") and sur.author == "\ufffd"
    # And the store takes them: a lone surrogate would fail SQLite's UTF-8 encoding.
    store = Store(tmp_path / "s.sqlite3", model="hashing-64", dim=64)
    report = Ingestor(store, HashingEmbedder()).ingest(articles)
    assert sorted(report.added) == ["A \ufffd title", "Fine"] and not report.skipped


def test_nul_anywhere_is_binary_and_utf16_or_32_with_a_bom_is_read(tmp_path: Path) -> None:
    text = "Sixteen bit title\n\n" + BODY
    (tmp_path / "le.txt").write_bytes(text.encode("utf-16"))
    (tmp_path / "be.txt").write_bytes(b"\xfe\xff" + text.encode("utf-16-be"))
    (tmp_path / "u32.md").write_bytes(("# Thirty two\n\n" + BODY).encode("utf-32"))
    (tmp_path / "nobom.txt").write_bytes(text.encode("utf-16-le"))
    (tmp_path / "late.txt").write_bytes(b"Title\n\n" + b"word " * 3000 + b"\x00")
    articles, skipped = load(tmp_path)
    assert sorted(a.text for a in articles if a.title != "Thirty two") == [text, text]
    assert [a.title for a in articles if a.source and a.source.endswith("u32.md")] == ["Thirty two"]
    assert skipped == {
        "late.txt": "binary file, not text",
        "nobom.txt": "UTF-16 text without a byte order mark; save the file as UTF-8",
    }


def test_fifo_links_and_loops_are_each_one_skip_and_never_block(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text("# Good\n\n" + BODY, encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "self.txt").symlink_to(tmp_path / "self.txt")
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to(tmp_path)  # a folder cycle
    done: list[tuple[list[RawArticle], dict[str, str]]] = []
    worker = threading.Thread(target=lambda: done.append(load(tmp_path)), daemon=True)
    worker.start()
    worker.join(20)
    if not done:  # a FIFO opened for reading waits for a writer: unblock it, then fail
        with open(tmp_path / "pipe.txt", "wb"):
            pass
        pytest.fail("reading the folder blocked on the FIFO")
    articles, skipped = done[0]
    assert [a.title for a in articles] == ["Good"]
    assert skipped["pipe.txt"].startswith("a FIFO (named pipe), not a file")
    assert skipped["self.txt"].startswith("symlink loop")
    assert skipped["dangling.txt"].startswith("broken symlink")
    assert skipped["up"].startswith("symlink loop")
    assert len(skipped) == 4
    # Named directly, too.
    [skip] = find_files(tmp_path / "pipe.txt")
    assert isinstance(skip, SkipSource) and "FIFO" in skip.reason


def test_metadata_is_validated_where_it_enters() -> None:
    raw = RawArticle(
        key="k",
        text="Bell\x07 and escape\x1b[31m, tab\tand\nline kept.\x00",
        title="Headline words " * 8000 + "\x1b]8;;evil\x07",
        url="javascript:alert(1)",
        publisher="Evil\nskipped forged: line",
        published="[Official statement](https://evil.example/login)",
        author="A" * 5000,
    )
    assert raw.text == "Bell and escape[31m, tab\tand\nline kept."
    assert raw.title is not None and len(raw.title) <= 300
    assert raw.title.split()[-1] in ("Headline", "words")
    assert raw.url is None and raw.published is None
    assert raw.publisher == "Evil skipped forged: line" and raw.author == "A" * 200
    # Dates are normalised; URLs must be absolute http(s) without spaces.
    assert RawArticle(key="k", text="t", published="Tue, 14 Mar 2017 10:00:00 GMT").published == (
        "2017-03-14"
    )
    assert RawArticle(key="k", text="t", published="2024-03-01T10:00:00Z").published == (
        "2024-03-01"
    )
    assert RawArticle(key="k", text="t", published="2017-03-14\nmore").published == "2017-03-14"
    assert RawArticle(key="k", text="t", url="https://a.example/x?y=1").url == (
        "https://a.example/x?y=1"
    )
    for bad in (
        "https://a.example/x y",
        "/relative",
        "https://",
        "ftp://a.example/",
        "http://a\nb/",
    ):
        assert RawArticle(key="k", text="t", url=bad).url is None, bad
    # A copy with changes (how loaders set the source) is validated too.
    copied = raw.model_copy(update={"url": "data:text/html,x", "source": "/tmp/a\nb.txt"})
    assert copied.url is None and copied.source == "/tmp/a\\nb.txt"


def test_printable_names_cannot_forge_lines_or_drive_the_terminal() -> None:
    assert printable("a\nb\x1b[2J\u202ec.txt") == "a\\nb\\x1b[2J\\u202ec.txt"
    assert printable("caf\udce9.txt") == "caf\\xe9.txt"  # a name that is not UTF-8
    assert printable("x\ud800") == "x\\ud800"
    assert printable("a\nb", controls=False) == "a\nb"
    assert printable("plain/naïve.txt") == "plain/naïve.txt"


def test_a_pasted_first_line_title_is_cut_like_any_other(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3", model="hashing-64", dim=64)
    # A 100 KB first line of few words: a header line, so it is taken for the title.
    long_title = "Headline " + "W" * 100_000 + " end"
    raw = RawArticle(key="file:///x.txt", text=long_title + "\n\n" + BODY)
    Ingestor(store, HashingEmbedder()).ingest([raw])
    [info] = store.articles()
    assert info.title == "Headline " + "W" * 291
