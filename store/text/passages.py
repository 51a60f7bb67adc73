"""Packing an article's sentences into passages that fit the embedding model's window."""

from __future__ import annotations

from collections.abc import Callable

from store.models import PassageSpan, SentenceSpan, embedded_text
from store.text.sentences import split_long

Span = tuple[int, int]
_CHUNK = 512  # sentences handed to the tokenizer at once: its lists stay bounded


def pack(
    text: str,
    paragraphs: list[tuple[int, int]],
    spans: list[Span],
    title: str,
    *,
    budget: int,
    count_tokens: Callable[[list[str]], list[int]],
) -> tuple[list[SentenceSpan], list[PassageSpan]]:
    """Sentences and passages for one article, each passage fitting `budget` word pieces
    (the model's window less its title's), counted by `count_tokens` (special tokens
    included, as the model's tokenizer counts them).

    A passage is a run of whole sentences of one paragraph; a paragraph too long for the
    window becomes several passages. A single sentence too long for it is cut at spaces
    first, so the model never silently drops text.
    """
    flat = [span for first, last in paragraphs for span in spans[first:last]]
    token_of: dict[Span, int] = {}
    for lo in range(0, len(flat), _CHUNK):
        part = flat[lo : lo + _CHUNK]
        token_of.update(zip(part, count_tokens([text[s:e] for s, e in part]), strict=True))
    para_spans = [
        [
            piece
            for span in spans[first:last]
            for piece in _fit(text, span, token_of, budget, count_tokens)
        ]
        for first, last in paragraphs
    ]
    sentences: list[SentenceSpan] = []
    passages: list[PassageSpan] = []
    for para in para_spans:
        run: list[Span] = []
        used = 2  # [CLS] and [SEP]
        for s, e in para:
            need = token_of[(s, e)] - 2
            if run and used + need > budget:
                passages.append(_passage(text, run, len(sentences) - len(run), title))
                run, used = [], 2
            run.append((s, e))
            used += need
            sentences.append(
                SentenceSpan(
                    start=s, end=e, passage=len(passages), embedded=embedded_text(title, text[s:e])
                )
            )
        if run:
            passages.append(_passage(text, run, len(sentences) - len(run), title))
    return sentences, passages


def _fit(
    text: str,
    span: Span,
    token_of: dict[Span, int],
    budget: int,
    count_tokens: Callable[[list[str]], list[int]],
) -> list[Span]:
    """The span itself when it fits the window, else pieces cut at spaces that do."""
    tokens = token_of[span]
    if tokens <= budget:
        return [span]
    s, e = span
    width = max(20, int((e - s) * budget / tokens * 0.8))
    pieces = split_long(text, s, e, width)
    token_of.update(zip(pieces, count_tokens([text[a:b] for a, b in pieces]), strict=True))
    return [fit for piece in pieces for fit in _fit(text, piece, token_of, budget, count_tokens)]


def _passage(text: str, run: list[Span], first: int, title: str) -> PassageSpan:
    body = text[run[0][0] : run[-1][1]]
    return PassageSpan(
        first=first, last=first + len(run) - 1, text=body, embedded=embedded_text(title, body)
    )
