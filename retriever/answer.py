"""Answer: from a ranking to the quoted sentences, or to an abstention.

Nothing is quoted when the best confidence is under the line; otherwise the top sentences
that reach a share of the first one's confidence, with the same fact printed by several
articles quoted once citing each, the sentence before a quote that leans on it, and the
source of every article cited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from retriever.models import AnswerSentence
from retriever.scoring import Ranked
from retriever.snapshot import SentenceRow, Snapshot
from store.text.dedupe import same_words, words

# A sentence that opens like this leans on the one before it to make sense.
_LEANS_BACK = re.compile(
    r"^(?:he|she|it|they|his|her|its|their|them|this|that|these|those|there|such|"
    r"but|however|also|then|thus|therefore|meanwhile|moreover|instead|still|yet|"
    r"the (?:carrier|company|group|move|decision|plan|report|general|president|minister))\b",
    re.I,
)


def abstains(ranked: Ranked, line: float) -> bool:
    """Whether nothing answers: no candidate, or the best one's confidence under the line."""
    assert ranked.confidence is not None
    return ranked.scores.size == 0 or float(ranked.confidence[0]) < line


@dataclass
class _Choice:
    row: SentenceRow
    score: float
    words: list[str]
    articles: list[str] = field(default_factory=list)


def choose(
    snapshot: Snapshot, ranked: Ranked, k: int, line: float, relative_floor: float
) -> list[AnswerSentence]:
    """The top k distinct sentences above the abstention line, with their sources."""
    if abstains(ranked, line):
        return []
    assert ranked.confidence is not None
    first = float(ranked.confidence[0])
    floor = max(line, first * relative_floor)
    depth = 8 * k + 20
    top = [
        (int(p), float(c))
        for i, (p, c) in enumerate(
            zip(ranked.positions[:depth], ranked.confidence[:depth], strict=True)
        )
        if i == 0 or c >= floor
    ]
    rows = snapshot.sentence_rows([p for p, _ in top])
    chosen: list[_Choice] = []
    for pos, score in top:
        row = rows[pos]
        tokens = words(row.text)
        repeat = next((c for c in chosen if same_words(tokens, c.words)), None)
        if repeat is not None:
            # The same fact again: cite this article too, on the sentence already chosen.
            if row.article_id not in repeat.articles:
                repeat.articles.append(row.article_id)
        elif len(chosen) < k:
            chosen.append(_Choice(row, score, tokens, [row.article_id]))
        # Once k are chosen, the rest only matter as other printings of those k.
    infos = snapshot.sources({a for c in chosen for a in c.articles})
    return [
        AnswerSentence(
            text=c.row.text,
            score=c.score,
            start=c.row.start,
            end=c.row.end,
            article=infos[c.articles[0]],
            also_in=tuple(infos[a] for a in c.articles[1:]),
            context_before=_context_before(snapshot, c.row),
        )
        for c in chosen
    ]


def _context_before(snapshot: Snapshot, row: SentenceRow) -> str | None:
    """The sentence before this one in its passage, when this one leans on it."""
    if not _LEANS_BACK.match(row.text):
        return None
    return snapshot.sentence_before(row)
