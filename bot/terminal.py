"""An answer as the terminal shows it (`qabot ask`, `qabot chat`): quotes, then where each
comes from."""

from __future__ import annotations

from datetime import date
from typing import Any


def render_answer(answer: Any) -> str:
    """An answer for the terminal: quotes, then where each comes from."""
    if answer.abstained:
        return "I couldn't find that in the articles."
    lines = []
    for n, a in enumerate(answer.answers, start=1):
        quote = f"… {a.context_before} {a.text}" if a.context_before else a.text
        lines.append(f"{n}. “{quote}”")
        for src in (a.article, *a.also_in):
            lines.append(f"   — {format_source(src)}")
        lines.append("")
    return "\n".join(lines).rstrip()


def format_source(src: Any) -> str:
    parts = [src.title]
    if src.publisher:
        parts.append(src.publisher)
    if src.published:
        parts.append(human_date(src.published))
    parts.append(src.url or src.source or "")
    return ", ".join(p for p in parts if p)


def human_date(value: str) -> str:
    """'2017-03-14' -> 'March 14, 2017'; anything else as written."""
    try:
        d = date.fromisoformat(value[:10])
    except ValueError:
        return value
    return f"{d:%B} {d.day}, {d.year}"
