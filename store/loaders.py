"""Reading articles from files: plain text, Markdown, HTML, JSON and JSON lines.

Each loader yields RawArticle objects, or SkipSource for an input that cannot be read, with
a reason a user can act on; one bad file never stops a batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from store.errors import SkipSource, StoreError
from store.models import RawArticle

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}
SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES
MAX_FILE_BYTES = 50_000_000


def find_files(source: Path) -> Iterator[Path | SkipSource]:
    """The readable article files under `source` (a file, or a folder searched recursively)."""
    if not source.exists():
        yield SkipSource(str(source), "no such file or folder")
        return
    if source.is_file():
        if source.suffix.lower() in SUFFIXES:
            yield source
        else:
            yield SkipSource(str(source), _unsupported(source))
        return
    for path in sorted(source.rglob("*")):
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(source).parts):
            if path.suffix.lower() in SUFFIXES:
                yield path
            else:
                yield SkipSource(str(path), _unsupported(path))


def _unsupported(path: Path) -> str:
    kinds = ", ".join(sorted(SUFFIXES))
    return f"unsupported file type {path.suffix or '(none)'!r}; qabot reads {kinds}"


def read_text(path: Path) -> str:
    """A file's text, or SkipSource saying why it is not readable UTF-8 text."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SkipSource(str(path), f"file is {size // 1_000_000} MB; the limit is 50 MB")
        data = path.read_bytes()
    except PermissionError as exc:
        raise SkipSource(str(path), "permission denied; check the file's permissions") from exc
    except OSError as exc:
        raise SkipSource(str(path), f"cannot read it ({exc.strerror or exc})") from exc
    if not data.strip():
        raise SkipSource(str(path), "empty file")
    if b"\x00" in data[:8192]:
        raise SkipSource(str(path), "binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SkipSource(
            str(path), f"invalid UTF-8 at byte {exc.start}; save the file as UTF-8"
        ) from exc
    return text


def load_file(path: Path) -> Iterator[RawArticle | SkipSource]:
    """The articles in one file."""
    try:
        text = read_text(path)
    except SkipSource as skip:
        yield skip
        return
    key = path.resolve().as_uri()
    shown = str(path.resolve())
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        yield from _load_json(path, key, text, shown)
    elif suffix in HTML_SUFFIXES:
        yield _load_html(shown, key, text)
    else:
        title = None
        if suffix in {".md", ".markdown"}:
            for line in text.splitlines():
                if line.strip():
                    if line.startswith("# "):
                        title = line[2:].strip()
                    break
        yield RawArticle(key=key, text=text, title=title, source=shown)


def _load_html(path: str, key: str, html: str) -> RawArticle | SkipSource:
    from store.web import html_to_article

    try:
        article = html_to_article(html, url=None)
    except StoreError as exc:  # already a reason a user can act on
        return SkipSource(path, str(exc))
    except Exception as exc:  # the extractor's own errors vary by page
        return SkipSource(path, f"no article text found in the HTML ({exc})")
    return article.model_copy(update={"key": article.url or key, "source": path})


_FIELDS = ("title", "url", "publisher", "published", "author")


def _load_json(path: Path, key: str, text: str, shown: str) -> Iterator[RawArticle | SkipSource]:
    records: list[tuple[str, object]] = []
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            yield SkipSource(str(path), f"invalid JSON at line {exc.lineno}: {exc.msg}")
            return
        items = data if isinstance(data, list) else [data]
        records = [(f"item {i + 1}", item) for i, item in enumerate(items)]
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((f"line {n}", json.loads(line)))
            except json.JSONDecodeError as exc:
                yield SkipSource(f"{path}:{n}", f"invalid JSON ({exc.msg}); fix or remove it")
    for where, item in records:
        label = f"{path} {where}"
        if not isinstance(item, dict):
            yield SkipSource(label, "not a JSON object; each article is an object")
            continue
        body = item.get("text")
        if not isinstance(body, str) or not body.strip():
            yield SkipSource(label, 'no "text" field; each article needs its text')
            continue
        meta = {f: str(item[f]) for f in _FIELDS if item.get(f) not in (None, "")}
        title = meta.get("title")
        url = meta.get("url")
        yield RawArticle(
            key=url or f"{key}#{title or where}",
            text=body,
            source=shown,
            pre_cleaned=True,
            **meta,
        )
