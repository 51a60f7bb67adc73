"""Follow-up questions made by rule from the ReQA/SQuAD questions, and their measurement.

A SQuAD question whose subject is a name ("What did Tesla build in 1899?") becomes a
follow-up by putting a pronoun in the name's place ("What did it build in 1899?"), with an
earlier question of the same article that names it as the conversation so far. The same
question with the name spelled out is the upper bound; the bare rewritten question asked
alone is the lower bound. Nothing of SQuAD is written into the project: the set is made
from the benchmark files wherever they are, each time.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from retriever.conversation import Conversation, entities
from retriever.evaluate import (
    ReqaData,
    ReqaQuestion,
    Scores,
    Span,
    first_hit,
    is_correct,
    percentile,
)
from retriever.models import Mode
from retriever.retriever import Retriever


@dataclass(frozen=True)
class FollowUp:
    """A rule-made follow-up: `question` leans on `history` for the name `subject` that
    `named` (the original question) spells out."""

    question: str
    named: str
    subject: str
    history: tuple[str, ...]
    source: ReqaQuestion

    def as_case(self) -> dict[str, Any]:
        """The follow-up as a line of `qabot eval cases` (with the answers' texts to find)."""
        return {
            "question": self.question,
            "history": list(self.history),
            "named": self.named,
            "id": self.source.id,
        }


def _pronoun_for(question: str, start: int, end: int) -> tuple[int, int, str]:
    """Where the name (with a "the" before and "'s" after it) is, and the pronoun for it."""
    tail = question[end:]
    possessive = re.match(r"(?:'s|’s|'|’)(?=\W|$)", tail)
    if possessive:
        end += possessive.end()
    head = question[:start]
    the = re.search(r"\bthe\s+$", head, re.I)
    if the:
        start = the.start()
    return start, end, "its" if possessive else "it"


_AUX = frozenset(
    "did does do was is were are has have had can could will would should may might".split()
)
_AFTER_OBJECT = frozenset(
    """in on at to for from by with about of into over as during after before since than
    and or that which who when where while""".split()
)


def _stands_for_itself(question: str, start: int, end: int) -> bool:
    """Whether the name is a noun phrase of its own a pronoun can replace: the subject after
    an auxiliary ("did Tesla build"), a possessor ("Tesla's funding"), or an object that
    ends a clause ("pollute the Rhine?") -- not a modifier ("Islamist movements")."""
    before = question[:start].split()
    if before and before[-1].casefold() == "the":
        before = before[:-1]
    if before and before[-1].casefold() in _AUX:
        return True
    tail = question[end:]
    if re.match(r"(?:'s|’s|'|’)(?=\W|$)", tail):
        return True
    if re.match(r"\s*[?,.;:]|\s*$", tail):
        return True
    nxt = tail.split()
    return bool(nxt) and nxt[0].casefold() in _AFTER_OBJECT


def make_followups(data: ReqaData, questions: list[ReqaQuestion]) -> list[FollowUp]:
    """Every question of `questions` that names exactly one thing, which another question
    of the same article also names, rewritten to point back to it (in the file's order)."""
    by_doc: dict[str, list[ReqaQuestion]] = {}
    for q in data.questions:
        by_doc.setdefault(q.doc_id, []).append(q)
    names_of = {q.id: entities(q.text) for q in data.questions}
    out = []
    for q in questions:
        names = names_of[q.id]
        if len(names) != 1:
            continue
        subject = names[0]
        at = q.text.find(subject)
        if at <= 0:  # absent as spelled, or opening the question (no pronoun fits there)
            continue
        history = next(
            (
                h
                for h in by_doc[q.doc_id]
                if h.id != q.id
                and h.paragraph_index != q.paragraph_index
                and any(n.casefold() == subject.casefold() for n in names_of[h.id])
            ),
            None,
        )
        if history is None:
            continue
        if not _stands_for_itself(q.text, at, at + len(subject)):
            continue
        start, end, pronoun = _pronoun_for(q.text, at, at + len(subject))
        rewritten = q.text[:start] + pronoun + q.text[end:]
        if entities(rewritten):
            continue
        out.append(FollowUp(rewritten, q.text, subject, (history.text,), q))
    return out


def _hit(
    retriever: Retriever, positions: Any, spans: dict[int, list[Span]], q: ReqaQuestion
) -> bool:
    rowids = retriever.sentence_rowids(positions[:1])
    return bool(first_hit([is_correct(spans.get(int(i), ()), q) for i in rowids]) == 1)


def run_followups(
    retriever: Retriever,
    data: ReqaData,
    followups: list[FollowUp],
    spans: dict[int, list[Span]],
    *,
    mode: Mode = "hybrid",
    standalone: int = 500,
    latency_sample: int = 200,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """hit@1 and how often qabot declined, for the follow-ups asked after their history
    (the harness asks it and feeds its own answers back), the same questions with the name
    spelled out (upper bound) and bare with no history (lower bound); a sample of the
    split's questions asked alone and after an unrelated conversation; and the latency of
    a follow-up against the same question asked alone, measured in the same run."""
    rows: dict[str, Scores] = {k: Scores() for k in ("followup", "named", "bare")}
    declined = {k: 0 for k in rows}
    folded = 0
    conversations: list[Conversation] = []
    for f in followups:
        _, conversation = retriever.converse(list(f.history), mode=mode)
        conversations.append(conversation)
        for kind, text, history in (
            ("followup", f.question, conversation),
            ("named", f.named, None),
            ("bare", f.question, None),
        ):
            ranked, reading = retriever.rank_in_context(text, history, mode=mode, depth=1)
            rows[kind].add(1 if _hit(retriever, ranked.positions, spans, f.source) else None)
            declined[kind] += int(retriever.abstains(ranked, mode))
            if kind == "followup":
                folded += int(reading.folded)
        if progress:
            progress(1)

    # Standalone questions after an unrelated conversation (another article's history).
    rng = random.Random(seed)
    split_ids = {f.source.doc_id for f in followups}
    candidates = [q for q in data.questions if q.doc_id in split_ids]
    sample = rng.sample(candidates, min(standalone, len(candidates)))
    alone, after = Scores(), Scores()
    changed = 0
    others = list(zip(followups, conversations, strict=True))
    for q in sample:
        unrelated = [c for f, c in others if f.source.doc_id != q.doc_id]
        history = rng.choice(unrelated) if unrelated else None
        r_alone, _ = retriever.rank_in_context(q.text, None, mode=mode, depth=1)
        r_after, reading = retriever.rank_in_context(q.text, history, mode=mode, depth=1)
        alone.add(1 if _hit(retriever, r_alone.positions, spans, q) else None)
        after.add(1 if _hit(retriever, r_after.positions, spans, q) else None)
        changed += int(reading.folded)

    # Latency: each sampled follow-up asked with its history, and alone, interleaved.
    lat_follow, lat_alone = [], []
    for i in rng.sample(range(len(followups)), min(latency_sample, len(followups))):
        f, conversation = followups[i], conversations[i]
        t = time.perf_counter()
        retriever.ask(f.question, mode=mode, history=conversation)
        lat_follow.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        retriever.ask(f.question, mode=mode)
        lat_alone.append((time.perf_counter() - t) * 1000)

    n = max(1, len(followups))
    out: dict[str, Any] = {"followups": len(followups), "folded": round(folded / n, 4)}
    for kind, scores in rows.items():
        out[kind] = {
            "hit1": round(scores.recall(1), 4),
            "declined": round(declined[kind] / n, 4),
        }
    out["standalone"] = {
        "questions": len(sample),
        "hit1_alone": round(alone.recall(1), 4),
        "hit1_after_unrelated": round(after.recall(1), 4),
        "read_as_followup": round(changed / max(1, len(sample)), 4),
    }
    p50_f, p50_a = percentile(lat_follow, 50), percentile(lat_alone, 50)
    out["latency_ms"] = {
        "followup_p50": round(p50_f, 2),
        "followup_p95": round(percentile(lat_follow, 95), 2),
        "alone_p50": round(p50_a, 2),
        "alone_p95": round(percentile(lat_alone, 95), 2),
        "ratio_p50": round(p50_f / p50_a, 3) if p50_a else None,
    }
    return out
