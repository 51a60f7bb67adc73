"""Reading articles from files: plain text, Markdown, HTML, JSON and JSON lines.

Each loader yields RawArticle objects, or SkipSource for an input that cannot be read, with
a reason a user can act on; one bad file never stops a batch.
"""

from __future__ import annotations

import codecs
import errno
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from store.errors import SkipSource, StoreError
from store.models import MAX_TITLE_CHARS, RawArticle, one_line, valid_url
from store.sources.html import html_to_article

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".text", ".md", ".markdown"}
HTML_SUFFIXES = {".html", ".htm"}
JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}
SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | JSON_SUFFIXES
MAX_FILE_BYTES = 50_000_000
# Byte order marks, longest first: UTF-32's little-endian one starts like UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)


def find_files(source: Path) -> Iterator[Path | SkipSource]:
    """The readable article files under `source` (a file, or a folder searched recursively).

    Anything else met on the way is a SkipSource saying what it is: a FIFO, device or socket
    (never opened: a FIFO would block the ingest), a symlink loop or a broken link, a file or
    folder that cannot be read. Hidden files and folders are passed over, as before.
    """
    try:
        info = source.stat()
    except OSError as exc:
        yield SkipSource(str(source), _stat_reason(source, exc))
        return
    if not stat.S_ISDIR(info.st_mode):
        yield _classify(source, info)
        return
    found: list[Path | SkipSource] = []
    # Each folder is read with the (device, inode) of the folders above it: a symlink back
    # to one of them is a loop, reported once, instead of a walk that never ends.
    todo: list[tuple[Path, frozenset[tuple[int, int]]]] = [
        (source, frozenset({(info.st_dev, info.st_ino)}))
    ]
    while todo:
        folder, above = todo.pop()
        try:
            with os.scandir(folder) as it:
                entries = [e for e in it if not e.name.startswith(".")]
        except OSError as exc:
            found.append(SkipSource(str(folder), _folder_reason(exc)))
            continue
        for entry in entries:
            path = Path(entry.path)
            try:
                info = os.stat(entry.path)  # follows a symlink to what it names
            except OSError as exc:
                found.append(SkipSource(str(path), _stat_reason(path, exc)))
                continue
            if stat.S_ISDIR(info.st_mode):
                node = (info.st_dev, info.st_ino)
                if node in above:
                    found.append(
                        SkipSource(str(path), "symlink loop: it leads back to a folder above it")
                    )
                else:
                    todo.append((path, above | {node}))
            else:
                found.append(_classify(path, info))
    yield from sorted(found, key=lambda f: str(f.source if isinstance(f, SkipSource) else f))


def _classify(path: Path, info: os.stat_result) -> Path | SkipSource:
    """`path` when it is a regular file of a kind qabot reads, else why it is skipped."""
    mode = info.st_mode
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file"
        )
        return SkipSource(str(path), f"{kind}, not a file; qabot reads regular files only")
    if path.suffix.lower() not in SUFFIXES:
        return SkipSource(str(path), _unsupported(path))
    return path


def _stat_reason(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop; point the link at a file or remove it"
    if exc.errno == errno.ENOENT:
        if path.is_symlink():
            return "broken symlink: what it points to does not exist"
        return "no such file or folder"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied; check its permissions"
    return f"cannot read it ({exc.strerror or exc})"


def _folder_reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "folder not readable (permission denied); check its permissions"
    return f"cannot list this folder ({exc.strerror or exc})"


def _unsupported(path: Path) -> str:
    kinds = ", ".join(sorted(SUFFIXES))
    return f"unsupported file type {path.suffix or '(none)'!r}; qabot reads {kinds}"


def read_text(path: Path) -> str:
    """A file's text, or SkipSource saying why it is not readable text.

    UTF-8 (with or without a BOM), and UTF-16 or UTF-32 with a BOM, are read; a NUL byte
    anywhere else marks a binary file. The file is opened without blocking and read only
    if it is a regular file, so a FIFO put in its place cannot hang the ingest.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise SkipSource(str(path), "not a regular file; qabot reads regular files only")
            if info.st_size > MAX_FILE_BYTES:
                raise SkipSource(
                    str(path),
                    f"file is {info.st_size / 1_000_000:.1f} MB; the limit is "
                    f"{MAX_FILE_BYTES // 1_000_000} MB: split it into smaller articles",
                )
            data = f.read(MAX_FILE_BYTES + 1)
    except PermissionError as exc:
        raise SkipSource(str(path), "permission denied; check the file's permissions") from exc
    except OSError as exc:
        raise SkipSource(str(path), _stat_reason(path, exc)) from exc
    if len(data) > MAX_FILE_BYTES:  # it grew while being read
        raise SkipSource(str(path), f"file is over the limit of {MAX_FILE_BYTES // 1_000_000} MB")
    if not data.strip():
        raise SkipSource(str(path), "empty file")
    text = _decode(path, data)
    if not text.strip():
        raise SkipSource(str(path), "empty file")
    return text


def _decode(path: Path, data: bytes) -> str:
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError:
                continue  # FF FE 00 00 may start UTF-16 too; else it is binary, below
            if "\x00" in text:
                raise SkipSource(str(path), f"binary file, not text (NUL characters in {name})")
            return text
    if b"\x00" in data:
        # Every other byte NUL: UTF-16 saved without the mark that says which order.
        half = len(data) // 2
        if half >= 8 and max(data[0::2].count(0), data[1::2].count(0)) > 0.9 * half:
            raise SkipSource(
                str(path), "UTF-16 text without a byte order mark; save the file as UTF-8"
            )
        raise SkipSource(str(path), "binary file, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SkipSource(
            str(path), f"invalid UTF-8 at byte {exc.start}; save the file as UTF-8"
        ) from exc


def load_file(path: Path) -> Iterator[RawArticle | SkipSource]:
    """The articles in one file, or why it (or a record of it) is skipped.

    Never raises: whatever goes wrong reading one file becomes a SkipSource for it, with the
    traceback logged at debug level, so the rest of the batch still goes in.
    """
    try:
        yield from _load_file(path)
    except Exception as exc:
        log.debug("reading %s failed", path, exc_info=True)
        yield SkipSource(
            str(path),
            f"could not be read ({type(exc).__name__}: {str(exc)[:200]}); run qabot -v ingest "
            "for the details, and please report it",
        )


def _load_file(path: Path) -> Iterator[RawArticle | SkipSource]:
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
    try:
        article = html_to_article(html, url=None)
    except StoreError as exc:  # already a reason a user can act on
        return SkipSource(path, str(exc))
    except Exception as exc:  # the extractor's own errors vary by page
        return SkipSource(path, f"no article text found in the HTML ({exc})")
    return article.model_copy(update={"key": article.url or key, "source": path})


# Python's JSON reader recurses once a level: past ~1,000 levels it raises RecursionError.
_DEEP = "nested too deeply to read; each article is one flat JSON object"


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError(_DEEP) from exc


_FIELDS = ("title", "url", "publisher", "published", "author")


def _load_json(path: Path, key: str, text: str, shown: str) -> Iterator[RawArticle | SkipSource]:
    records: list[tuple[str, object]] = []
    if path.suffix.lower() == ".json":
        try:
            data = _json(text)
        except json.JSONDecodeError as exc:
            yield SkipSource(str(path), f"invalid JSON at line {exc.lineno}: {exc.msg}")
            return
        except ValueError as exc:
            yield SkipSource(str(path), str(exc))
            return
        items = data if isinstance(data, list) else [data]
        records = [(f"item {i + 1}", item) for i, item in enumerate(items)]
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((f"line {n}", _json(line)))
            except json.JSONDecodeError as exc:
                yield SkipSource(f"{path}:{n}", f"invalid JSON ({exc.msg}); fix or remove it")
            except ValueError as exc:
                yield SkipSource(f"{path}:{n}", str(exc))
    for where, item in records:
        label = f"{path} {where}"
        if not isinstance(item, dict):
            yield SkipSource(label, "not a JSON object; each article is an object")
            continue
        body = item.get("text")
        if not isinstance(body, str) or not body.strip():
            yield SkipSource(label, 'no "text" field; each article needs its text')
            continue
        # A field that is not a string or a number (an object, a list) is left out.
        meta = {
            f: str(item[f])
            for f in _FIELDS
            if isinstance(item.get(f), str | int | float) and item[f] != ""
        }
        title = one_line(meta.get("title"), MAX_TITLE_CHARS)
        url = valid_url(meta.get("url"))
        yield RawArticle(
            key=url or f"{key}#{title or where}",
            text=body,
            source=shown,
            pre_cleaned=True,
            **meta,
        )
