"""read_source: one reader for a file, a folder or a URL, in the order the parts are met."""

from __future__ import annotations

from pathlib import Path

from store.errors import SkipSource
from store.models import RawArticle
from store.sources.read import is_url, read_source

TEXT = "The ferry to Holm Island runs twice a day in summer and once a day in winter."


def test_a_folder_is_read_file_by_file_with_its_skips_in_place(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(f"Ferry times\n\n{TEXT}", encoding="utf-8")
    (tmp_path / "b.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "c.md").write_text(f"# Harbour works\n\n{TEXT}", encoding="utf-8")
    got = list(read_source(tmp_path, allow_private=False))
    assert [Path(item.source or "").name for item in got] == ["a.txt", "b.pdf", "c.md"]
    assert [type(item) for item in got] == [RawArticle, SkipSource, RawArticle]
    assert "unsupported file type '.pdf'" in got[1].reason  # type: ignore[union-attr]


def test_a_str_is_a_url_never_a_path(tmp_path: Path) -> None:
    article = tmp_path / "a.txt"
    article.write_text(TEXT, encoding="utf-8")
    assert not is_url(str(article)) and is_url("https://example.org/a")
    [skip] = list(read_source(str(article), allow_private=True))
    assert isinstance(skip, SkipSource)
    assert skip.reason == "no scheme; only http and https URLs are fetched"
