"""Telling repeated text apart: the same sentence pasted twice with a word changed.

Cleaning keeps an article's body once (`NearDuplicates`); the retriever collapses answers that
say the same thing (`same_words`); the HTML reader drops a standfirst that repeats the headline.
"""

from __future__ import annotations

import difflib
import re
import zlib
from collections import Counter

_WORD = re.compile(r"\w+", re.UNICODE)
# A word 3-gram seen in this many kept sentences ("one of the") no longer points to more:
# too common to single out a copy, and the candidates it gave made an article quadratic.
_MAX_POSTINGS = 64
_SKETCH = 8  # 3-grams remembered of each kept sentence (see _NearDuplicates)


def words(text: str) -> list[str]:
    """Lower-cased word tokens, for comparing sentences."""
    return _WORD.findall(text.lower())


def same_words(a: list[str], b: list[str], threshold: float = 0.8) -> bool:
    """Whether two word sequences say the same thing with at most small edits."""
    if a == b:
        return True
    if min(len(a), len(b)) < 6:
        return False
    if min(len(a), len(b)) < 12:
        threshold = max(threshold, 0.88)
    # Upper bounds of ratio() first, cheapest first (difflib's real_quick_ratio and
    # quick_ratio, without building its matcher): most pairs are told apart by them alone.
    total = len(a) + len(b)
    if 2.0 * min(len(a), len(b)) / total < threshold:
        return False
    # Numbers carry facts: "route 14 on Sept. 15" and "route 15 on Sept. 22" differ.
    if sorted(w for w in a if w.isdigit()) != sorted(w for w in b if w.isdigit()):
        return False
    if 2.0 * sum((Counter(a) & Counter(b)).values()) / total < threshold:
        return False
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() >= threshold


class NearDuplicates:
    """Remembers kept sentences and spots a new one that repeats one of them.

    Two sentences are the same when their word sequences match at 80% or more (difflib's
    ratio), which catches a copy with a word or two changed ("in the wake of a major defeat"
    / "following a major setback"). Candidates are found by shared word 3-grams, so an
    article costs linear time rather than every pair; and only a sample of each kept
    sentence's 3-grams is remembered (the _SKETCH with the lowest hashes, a bottom-k
    sketch), so memory grows by a few numbers a sentence, not by every 3-gram of the
    article (a 50 MB article held over a GB of them). A copy with a word or two changed
    shares most 3-grams with its original, so it holds one of the sampled ones.
    """

    def __init__(self, threshold: float = 0.8) -> None:
        self.threshold = threshold
        self.kept: list[str] = []  # the kept sentences; their words are found again when needed
        self.exact: dict[int, int] = {}  # hash of a kept sentence's words -> its index
        self.shingles: dict[int, list[int]] = {}  # hash of a sampled 3-gram -> sentences

    def seen(self, sentence: str) -> bool:
        tokens = words(sentence)
        key = _digest(tokens)
        same = self.exact.get(key)
        if same is not None and words(self.kept[same]) == tokens:
            return True
        grams = {_digest(tokens[i : i + 3]) for i in range(max(1, len(tokens) - 2))}
        if len(tokens) >= 6:
            counts: dict[int, int] = {}
            for gram in grams:
                for idx in self.shingles.get(gram, ()):
                    counts[idx] = counts.get(idx, 0) + 1
            for idx, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:5]:
                if same_words(tokens, words(self.kept[idx]), self.threshold):
                    return True
        idx = len(self.kept)
        self.kept.append(sentence)
        self.exact.setdefault(key, idx)
        for gram in sorted(grams)[:_SKETCH]:
            postings = self.shingles.setdefault(gram, [])
            if len(postings) < _MAX_POSTINGS:
                postings.append(idx)
        return False


def _digest(tokens: list[str]) -> int:
    """A hash of words that is the same in every run (Python's own is salted per process),
    so an article is cleaned, and identified, the same way each time it is ingested."""
    return zlib.crc32("\x1f".join(tokens).encode("utf-8", "surrogatepass"))
