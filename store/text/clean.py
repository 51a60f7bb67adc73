"""Cleaning articles as people paste them.

Text copied from a web page carries more than the article: a publisher line, a photo
caption, a dateline, "Leave a Reply", and often the body twice (once from the page, once from
a print view) with small edits between the copies. Cleaning keeps the body once and turns the
header lines into metadata. The cleaned text is what sentences index into, so every quoted
sentence is an exact substring of it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from store.text.dedupe import NearDuplicates, words
from store.text.sentences import split_long, split_sentences

_MONTH_NAMES = (
    "january february march april may june july august september october november december"
).split()
_MONTH_RE = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_DATE_PATTERNS = (
    # March 14, 2017 / Mar. 14 2017
    re.compile(
        rf"\b(?P<m>{_MONTH_RE})\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})\b", re.I
    ),
    # 14 March 2017
    re.compile(
        rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<m>{_MONTH_RE}),?\s+(?P<y>\d{{4}})\b", re.I
    ),
    # 2017-03-14
    re.compile(r"\b(?P<y>\d{4})-(?P<mn>\d{2})-(?P<d>\d{2})(?!\d)"),
)

# Page furniture: short lines that belong to the page around an article, not to it.
_FURNITURE = re.compile(
    r"""^(?:
        leave\ a\ (?:reply|comment)|post\ a\ comment|add\ a\ comment|
        (?:\d+\s+)?comments?(?:\s*\(?\d+\)?)?:?|show\ comments|view\ comments|
        .*\bcomments?\s*[»›>]+.*|.*\|\s*comments?\b.*|
        share(?:\ this)?(?:\ (?:article|story|post|page))?(?:\ on\ \w+)?:?|
        share\ (?:on|via)\ .*|tweet|print|email|e-mail|whatsapp|facebook|twitter|linkedin|reddit|
        (?:click|tap)\ here\b.*|read\ (?:more|also|next)\b.*|continue\ reading.*|
        related(?:\ (?:articles?|posts?|stories|news|content|coverage))?:?|
        (?:you\ may\ )?also\ like:?.*|more\ from\ .*|recommended(?:\ for\ you)?:?|
        (?:sign\ up|subscribe|register)\b.*newsletter.*|subscribe(?:\ now|\ today)?\b.*|
        sign\ up\b.*|log\ ?in\b.*|you\ must\ be\ logged\ in.*|
        advertisement|sponsored(?:\ content)?|
        (?:copyright\s*)?©.*|all\ rights\ reserved.*|
        tags?:.*|filed\ under:?.*|posted\ in\b.*|categories?:.*|
        (?:previous|next)\ (?:article|post|story)\b.*|back\ to\ top|
        this\ (?:site|website)\ uses\ cookies.*|we\ use\ cookies.*|accept(?:\ all)?\ cookies.*|
        (?:\d+\s+)?(?:likes?|shares?|views?)
    )$""",
    re.I | re.X,
)
_BYLINE = re.compile(r"^(?:by|written by|posted by|author:)\s+(?P<name>[^\d|]{2,80})$", re.I)
_TERMINAL = re.compile(r"[.!?…][\"'”’»)\]]*$")
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
# A "sentence" longer than this (a table or list pasted without full stops, a whole file on
# one line) is cut at spaces into pieces this long: the model's window takes ~1,000
# characters, so ingest cuts it anyway, and comparing word lists this long for duplicates
# would cost time quadratic in their length.
MAX_SENTENCE_CHARS = 2000


@dataclass
class CleanedArticle:
    """The result of cleaning: body text, its sentences, and what the header said."""

    text: str
    sentences: list[tuple[int, int]]
    paragraphs: list[tuple[int, int]]  # each paragraph's sentence index range [first, last)
    title: str | None = None
    publisher: str | None = None
    published: str | None = None
    author: str | None = None
    dropped: list[str] = field(default_factory=list)  # furniture, captions, duplicates


def normalize(raw: str) -> str:
    """Unicode NFC, unified line ends, no zero-width characters, tidy spaces per line."""
    text = unicodedata.normalize("NFC", raw).translate(_ZERO_WIDTH)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n")
    text = text.replace("\u00a0", " ").replace("\t", " ")
    lines = [re.sub(r" {2,}", " ", line).strip() for line in text.split("\n")]
    return "\n".join(lines)


def parse_date(text: str) -> str | None:
    """The first date written in `text`, as YYYY-MM-DD, or None."""
    for pattern in _DATE_PATTERNS:
        m = pattern.search(text)
        if not m:
            continue
        try:
            if "mn" in m.groupdict() and m.group("mn"):
                month = int(m.group("mn"))
            else:
                month = _month_number(m.group("m"))
            return date(int(m.group("y")), month, int(m.group("d"))).isoformat()
        except ValueError:
            continue
    return None


def _month_number(name: str) -> int:
    key = name.lower().rstrip(".")[:3]
    for i, month in enumerate(_MONTH_NAMES, start=1):
        if month.startswith(key):
            return i
    raise ValueError(name)


def is_furniture(paragraph: str) -> bool:
    """Whether a paragraph is page furniture (share bars, comment prompts, cookie notes)."""
    if len(words(paragraph)) > 14:
        return False
    return bool(_FURNITURE.match(paragraph.strip()))


def _is_dateline(paragraph: str) -> bool:
    """A line that is a date and little else ("March 14, 2017", "Published 2017-03-14")."""
    if parse_date(paragraph) is None:
        return False
    rest = paragraph
    for pattern in _DATE_PATTERNS:
        rest = pattern.sub(" ", rest)
    return len(words(rest)) <= 4


def _is_body(paragraph: str) -> bool:
    """Whether a paragraph reads like article prose rather than a header line."""
    n = len(words(paragraph))
    return n >= 14 or (n >= 6 and bool(_TERMINAL.search(paragraph)))


def _paragraphs(text: str) -> list[str]:
    """Paragraphs of pasted text: each line, except that hard-wrapped blocks are re-joined."""
    out: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        wrapped = len(lines) >= 3 and all(40 <= len(line) <= 100 for line in lines[:-1])
        current = lines[0]
        for line in lines[1:]:
            joins = wrapped or (
                not _TERMINAL.search(current) and (line[0].islower() or line[0].isdigit())
            )
            if joins:
                current = f"{current} {line}"
            else:
                out.append(current)
                current = line
        out.append(current)
    return out


def _split_header(paragraphs: list[str], cleaned: CleanedArticle, has_title: bool) -> list[str]:
    """Take the title, publisher, byline, dateline and caption off the top of pasted text."""
    i = 0
    if not has_title and paragraphs and not _is_body(paragraphs[0]):
        cleaned.title = paragraphs[0].lstrip("# ").strip()
        i = 1
    while i < len(paragraphs) and not _is_body(paragraphs[i]):
        line = paragraphs[i]
        byline = _BYLINE.match(line)
        if byline and cleaned.author is None:
            cleaned.author = byline.group("name").strip()
        elif _is_dateline(line):
            cleaned.published = cleaned.published or parse_date(line)
        elif cleaned.publisher is None and len(words(line)) <= 4 and not line.startswith("#"):
            cleaned.publisher = line
        cleaned.dropped.append(line)  # a caption or a header line: metadata, not body
        i += 1
    return paragraphs[i:]


def clean_text(
    raw: str, *, title: str | None = None, header: bool = True, published: str | None = None
) -> CleanedArticle:
    """Clean an article's text; `header` reads metadata off its first lines (pasted text).

    Returns the body with furniture dropped and repeated sentences kept once, with the
    sentence offsets into it. `title` given by the caller (JSON, HTML) is kept as is.
    """
    cleaned = CleanedArticle(text="", sentences=[], paragraphs=[], title=title)
    cleaned.published = published
    paragraphs = _paragraphs(normalize(raw))
    if header:
        paragraphs = _split_header(paragraphs, cleaned, has_title=title is not None)

    dupes = NearDuplicates()
    parts: list[str] = []
    offset = 0
    for paragraph in paragraphs:
        if is_furniture(paragraph):
            cleaned.published = cleaned.published or (parse_date(paragraph) if header else None)
            cleaned.dropped.append(paragraph)
            continue
        if paragraph.startswith("#"):  # a Markdown heading is structure, not a sentence
            cleaned.dropped.append(paragraph)
            continue
        found = [
            piece
            for s, e in split_sentences(paragraph)
            for piece in (
                [(s, e)]
                if e - s <= MAX_SENTENCE_CHARS
                else split_long(paragraph, s, e, MAX_SENTENCE_CHARS)
            )
        ]
        kept = []
        for s, e in found:
            sentence = paragraph[s:e]
            if dupes.seen(sentence):
                cleaned.dropped.append(sentence)
            else:
                kept.append((s, e))
        if not kept:
            continue
        if len(kept) == len(found):
            body, spans = paragraph, kept
        else:  # some sentences were repeats: rebuild the paragraph from the others
            pieces: list[str] = []
            spans, pos = [], 0
            for s, e in kept:
                spans.append((pos, pos + e - s))
                pieces.append(paragraph[s:e])
                pos += e - s + 1  # the space joining it to the next
            body = " ".join(pieces)
        if parts:
            offset += 2  # the "\n\n" between paragraphs
        first = len(cleaned.sentences)
        cleaned.sentences.extend((offset + s, offset + e) for s, e in spans)
        cleaned.paragraphs.append((first, len(cleaned.sentences)))
        parts.append(body)
        offset += len(body)
    cleaned.text = "\n\n".join(parts)
    return cleaned
