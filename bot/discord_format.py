"""Answers and listings as Discord messages: pure functions, no network, no state.

Discord rejects a message over 2000 characters, so everything here is built to a budget:
whole answers are dropped from the end first, and a quote that alone is too long is cut at
a sentence boundary, or else at a word boundary, never mid-word. Links are written
`[title](<url>)` so Discord shows no preview card under the answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from pathlib import PurePath
from typing import Any

from discord.utils import escape_markdown

MESSAGE_LIMIT = 2000
ABSTAIN_REPLY = "I couldn't find that in the articles."
ELLIPSIS = "…"

_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s")


def human_date(value: str | None) -> str | None:
    """'2017-03-14' -> 'March 14, 2017'; anything else as written."""
    if not value:
        return None
    try:
        d = date.fromisoformat(value[:10])
    except ValueError:
        return value
    return f"{d:%B} {d.day}, {d.year}"


def source_line(src: Any) -> str:
    """`[title](<url>) · publisher · date`; a file without a URL is named instead."""
    title = _link_text(src.title or "Untitled")
    if src.url:
        first = f"[{title}](<{src.url}>)"
    elif src.source:
        first = f"{title} ({escape_markdown(PurePath(src.source).name)})"
    else:
        first = title
    parts = [first]
    if src.publisher:
        parts.append(escape_markdown(src.publisher))
    when = human_date(src.published)
    if when:
        parts.append(when)
    return " · ".join(parts)


def format_answer(answer: Any, *, limit: int = MESSAGE_LIMIT) -> str:
    """The reply to a question: each quote, then where it comes from, within `limit`."""
    if answer.abstained or not answer.answers:
        return ABSTAIN_REPLY
    blocks = [_answer_block(n, a) for n, a in enumerate(answer.answers, start=1)]
    return _fit_blocks(blocks, limit)


def _answer_block(n: int, a: Any) -> tuple[str, str]:
    """(quote part, sources part) of one answer; only the quote may be trimmed."""
    quote = escape_markdown(a.text)
    if a.context_before:
        quote = f"{escape_markdown(a.context_before)} **{quote}**"
    sources = [a.article, *a.also_in]
    cite = "\n".join(f"— {source_line(s)}" for s in sources)
    return f"**{n}.** “{quote}”", cite


def _fit_blocks(blocks: Sequence[tuple[str, str]], limit: int) -> str:
    out: list[str] = []
    used = 0
    for i, (quote, cite) in enumerate(blocks):
        block = f"{quote}\n{cite}"
        sep = 2 if out else 0
        if used + sep + len(block) <= limit:
            out.append(block)
            used += sep + len(block)
            continue
        if i == 0:
            # The first answer alone is too long: keep its source, shorten its quote.
            room = limit - len(cite) - 1
            if room < 40:  # absurdly many sources: keep the first ones that fit
                cite = trim_lines(cite, limit // 2)
                room = limit - len(cite) - 1
            out.append(f"{trim(quote[:-1], room - 1)}”\n{cite}")
        break
    return "\n\n".join(out)


def trim(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters: at the last sentence end that fits, else at
    the last space, with an ellipsis; unchanged when it already fits."""
    if len(text) <= limit:
        return text
    budget = max(0, limit - len(ELLIPSIS) - 1)  # room for " …"
    head = text[: budget + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(head) if m.end() <= budget]
    if ends and ends[-1] > budget // 3:
        return text[: ends[-1]].rstrip() + " " + ELLIPSIS
    space = head.rfind(" ")
    if space <= 0:
        return ELLIPSIS if limit >= len(ELLIPSIS) else ""
    return text[:space].rstrip() + ELLIPSIS


def trim_lines(text: str, limit: int) -> str:
    """Whole lines of `text` that fit in `limit` characters."""
    out: list[str] = []
    used = 0
    for line in text.splitlines():
        if used + len(line) + (1 if out else 0) > limit:
            break
        used += len(line) + (1 if out else 0)
        out.append(line)
    return "\n".join(out)


def format_sources(
    articles: Sequence[Any], *, page: int, per_page: int = 10, limit: int = MESSAGE_LIMIT
) -> tuple[str, int]:
    """One page of the articles a server can ask about, and the number of pages."""
    if not articles:
        return "No articles yet. Someone with Manage Server can add some with `/ingest`.", 1
    pages = (len(articles) + per_page - 1) // per_page
    page = min(max(page, 1), pages)
    start = (page - 1) * per_page
    header = f"**Articles** ({len(articles)}), page {page} of {pages}"
    lines = [header]
    for a in articles[start : start + per_page]:
        lines.append(f"`{a.id[:10]}` {source_line(a)}")
    return trim_lines("\n".join(lines), limit), pages


def _link_text(title: str) -> str:
    """A title safe inside `[...]`: markdown escaped, brackets and newlines neutralised."""
    flat = " ".join(title.split())
    return escape_markdown(flat).replace("[", "(").replace("]", ")")
