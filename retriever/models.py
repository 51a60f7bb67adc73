"""What a question gets back. Frozen pydantic models."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Mode = Literal["hybrid", "dense", "bm25"]

# How readily qabot says it could not find an answer: the confidence below which nothing is
# quoted, by name (QABOT_ABSTAIN). Set on the ReQA even split; on the held-out odd split and
# samples/unanswerable.jsonl (see the README) "lenient" abstains on 1.1% of the benchmark's
# questions and 54% of the unanswerable ones, "balanced" 2.4% / 71%, "strict" 6.5% / 81%.
ABSTAIN_LEVELS = {"lenient": 0.60, "balanced": 0.65, "strict": 0.71}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Source(_Frozen):
    """The article a quoted sentence comes from.

    Not a store.models.ArticleMeta: it is the citation `qabot ask --json` prints, in this
    order and without the author, and a subclass would add the author and put url first.
    """

    id: str
    title: str
    publisher: str | None = None
    url: str | None = None  # the article's URL, or None for a file without one
    published: str | None = None
    source: str | None = None  # the file or URL it was read from


class AnswerSentence(_Frozen):
    """One quoted sentence: `text` is exactly `article.text[start:end]`.

    `context` holds neighbouring sentences (exact text too) when the sentence alone would
    not make sense (it opens with a pronoun or a connective); `also_in` lists other
    articles that carry the same sentence (the same fact printed twice).
    """

    text: str
    score: float
    start: int
    end: int
    article: Source
    context_before: str | None = None
    also_in: tuple[Source, ...] = ()


class Answer(_Frozen):
    question: str
    abstained: bool
    answers: tuple[AnswerSentence, ...]
    timings: dict[str, float]  # milliseconds per stage, plus "total"
    mode: Mode = "hybrid"
    # In a conversation: the question as qabot read it (a follow-up with the name it points
    # back to folded in; None when read as asked) and the earlier turns (numbered from 0)
    # it leaned on.
    understood: str | None = None
    context_used: tuple[int, ...] = ()

    def to_json_dict(self) -> dict[str, object]:
        """The `--json` shape documented in the README."""
        return {
            "question": self.question,
            "abstained": self.abstained,
            "answers": [
                {
                    "text": a.text,
                    "score": round(a.score, 4),
                    "start": a.start,
                    "end": a.end,
                    "context_before": a.context_before,
                    "article": a.article.model_dump(),
                    "also_in": [s.model_dump() for s in a.also_in],
                }
                for a in self.answers
            ],
            "timings": {k: round(v, 2) for k, v in self.timings.items()},
            "understood": self.understood,
            "context_used": list(self.context_used),
        }
