"""Sentence splitting with character offsets.

A rule-based splitter: fast (it runs on every ingested character), deterministic, and it
knows the abbreviations news text is full of ("Gen.", "Jan. 12", "U.S.", "Mr.", initials),
so it does not cut a sentence in the middle of a name or a date.
"""

from __future__ import annotations

import re

# Titles and words that are almost never the end of a sentence when followed by a capital.
_NEVER_FINAL = frozenset(
    """mr mrs ms dr prof gen lt col maj capt cmdr sgt cpl adm gov sen rep rev hon fr sr jr st
    pres supt insp det messrs mme mmes mlle vs v etc cf al approx ca nos no op vol fig figs
    ed eds est dept univ assn bros inc corp ltd co plc llc mt ft ave blvd rd hwy""".split()
)
# Month abbreviations: not final before a day number ("Jan. 12"), final before a capital.
_MONTHS = frozenset("jan feb mar apr jun jul aug sep sept oct nov dec".split())
# Company suffixes end sentences often enough ("... at Acme Inc. The ...") that they only
# protect a following lowercase word, which the generic rule already covers; titles don't.
_FINAL_OK = frozenset("inc corp ltd co plc llc etc".split())

_CANDIDATE = re.compile(r"[.!?…]+[\"'”’»)\]]*(?=\s+)")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")
_NEXT_START = re.compile(r"\s+([\"'“‘«(\[]*)(\S)")
_WORD_WINDOW = 100  # characters before a full stop searched for the word it ends


def _is_boundary(text: str, punct_start: int, punct_end: int) -> bool:
    """Whether the punctuation at [punct_start, punct_end) ends a sentence."""
    nxt = _NEXT_START.match(text, punct_end)
    if nxt is None:
        return False
    first = nxt.group(2)
    if first.islower() or first in ",;:":
        return False
    if text[punct_start] != ".":
        return True  # "!" and "?" end sentences; an exclamation inside a quote is rare
    if punct_end - punct_start > 1 and text[punct_start:punct_end].startswith("..."):
        return first.isupper()
    # Only the last few characters can hold the word: searching from 0 made a long
    # paragraph quadratic (a 5 MB single-line file took minutes here alone).
    word = _WORD_BEFORE.search(text, max(0, punct_start - _WORD_WINDOW), punct_start)
    if word is None:
        return True  # "1990." or "(see above)." end sentences
    token = word.group(1)
    low = token.lower().rstrip(".")
    if len(token) == 1 and token.isupper():
        return False  # an initial: "John F. Kennedy", "J. R. R. Tolkien"
    if "." in token:
        return False  # a dotted abbreviation: "U.S.", "e.g.", "a.m."
    if low in _MONTHS:
        return not first.isdigit()
    if low in _NEVER_FINAL and low not in _FINAL_OK:
        return False
    return True


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split `text[start:end]` into sentences; returns (start, end) offsets into `text`.

    Offsets exclude surrounding whitespace, so `text[s:e]` is each sentence exactly.
    Line breaks always end a sentence: callers pass paragraph-sized ranges.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text[:end]):
        if line.end() <= start:
            continue
        lo, hi = max(line.start(), start), line.end()
        cursor = lo
        for match in _CANDIDATE.finditer(text, lo, hi):
            if _is_boundary(text, match.start(), match.end()):
                _append(text, spans, cursor, match.end())
                cursor = match.end()
        _append(text, spans, cursor, hi)
    return spans


def _append(text: str, spans: list[tuple[int, int]], lo: int, hi: int) -> None:
    while lo < hi and text[lo].isspace():
        lo += 1
    while hi > lo and text[hi - 1].isspace():
        hi -= 1
    if hi > lo:
        spans.append((lo, hi))


def split_long(text: str, lo: int, hi: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut an over-long span at whitespace into pieces of at most `max_chars` characters.

    Used for run-on "sentences" (tables, lists pasted without punctuation) that would not
    fit the embedding model's window whole.
    """
    pieces: list[tuple[int, int]] = []
    while hi - lo > max_chars:
        cut = text.rfind(" ", lo + 1, lo + max_chars)
        if cut <= lo:
            cut = lo + max_chars
        _append(text, pieces, lo, cut)
        lo = cut
    _append(text, pieces, lo, hi)
    return pieces
