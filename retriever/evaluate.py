"""The evaluation harness: the ReQA sentence-retrieval benchmark and a user's own cases.

ReQA (Ahmad et al., 2019) asks every SQuAD question against the pool of all sentences of
all articles. A returned sentence is correct when its character span in its paragraph holds
the `answer_start` of one of the question's answers. qabot cleans and re-splits the articles
itself, so each stored sentence is mapped back to (article, paragraph, start, end) in the
benchmark's paragraphs, and the rule is applied to those spans: the score does not depend on
whose sentence splitter drew the lines.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retriever.errors import EvalDataError
from retriever.models import Mode
from retriever.retriever import Retriever
from store.models import RawArticle
from store.seams import Store
from store.text.dedupe import same_words, words

log = logging.getLogger(__name__)

REQA_KEY_PREFIX = "reqa:"
# Bump when the way the benchmark's articles are built changes: it keys the cached store.
REQA_STORE_VERSION = "3"
# Ranks beyond this count as misses for MRR (ReQA ranks the whole pool; past rank 100 a
# reciprocal rank adds under 0.01 to one question and nothing visible to the mean).
MRR_DEPTH = 100


# -- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReqaArticle:
    """One benchmark article: its title (`doc_id`) and its paragraphs, rebuilt exactly."""

    doc_id: str
    paragraphs: list[str]

    def raw(self) -> RawArticle:
        """The article as the normal ingestion path takes it."""
        return RawArticle(
            key=f"{REQA_KEY_PREFIX}{self.doc_id}",
            title=self.doc_id.replace("_", " "),
            text="\n\n".join(self.paragraphs),
            pre_cleaned=True,
        )


@dataclass(frozen=True)
class ReqaQuestion:
    id: str
    text: str
    doc_id: str
    paragraph_index: int
    answer_starts: tuple[int, ...]  # offsets in the paragraph
    doc_position: int  # the article's position in sentences.jsonl (for the even/odd split)


@dataclass
class ReqaData:
    folder: Path
    articles: list[ReqaArticle]
    questions: list[ReqaQuestion]

    def split(self, which: str) -> list[ReqaQuestion]:
        """The questions of the articles at even or odd positions, or all of them."""
        if which == "all":
            return list(self.questions)
        if which not in ("even", "odd"):
            raise EvalDataError(f"split {which!r} is not one of even, odd, all")
        parity = 0 if which == "even" else 1
        return [q for q in self.questions if q.doc_position % 2 == parity]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise EvalDataError(
            f"{path} not found; point the command at a folder holding the ReQA files "
            "sentences.jsonl and questions.jsonl"
        )
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise EvalDataError(f"{path} line {n} is not JSON: {exc}") from exc
    return rows


def load_reqa(folder: Path) -> ReqaData:
    """Read a ReQA folder (`sentences.jsonl`, `questions.jsonl`) and rebuild the paragraphs.

    A paragraph is its sentences at their `start`/`end` offsets with spaces in the gaps,
    which is the original paragraph text (the benchmark's gaps are whitespace).
    """
    sentences = _read_jsonl(folder / "sentences.jsonl")
    questions = _read_jsonl(folder / "questions.jsonl")
    order: list[str] = []
    paras: dict[str, dict[int, list[dict[str, Any]]]] = {}
    try:
        for s in sentences:
            doc = s["doc_id"]
            if doc not in paras:
                order.append(doc)
                paras[doc] = {}
            paras[doc].setdefault(int(s["paragraph_index"]), []).append(s)
        articles = []
        for doc in order:
            texts = []
            for p in sorted(paras[doc]):
                texts.append(_paragraph_text(sorted(paras[doc][p], key=lambda r: r["start"])))
            articles.append(ReqaArticle(doc, texts))
        position = {doc: i for i, doc in enumerate(order)}
        out = [
            ReqaQuestion(
                id=str(q["id"]),
                text=q["text"],
                doc_id=q["doc_id"],
                paragraph_index=int(q["paragraph_index"]),
                answer_starts=tuple(sorted({int(a["answer_start"]) for a in q["answers"]})),
                doc_position=position[q["doc_id"]],
            )
            for q in questions
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise EvalDataError(f"{folder} is not in the ReQA format ({exc!r})") from exc
    return ReqaData(folder=folder, articles=articles, questions=out)


def _paragraph_text(rows: list[dict[str, Any]]) -> str:
    text = ""
    for r in rows:
        start, end = int(r["start"]), int(r["end"])
        if start < len(text) or end - start != len(r["text"]):
            raise EvalDataError(f"sentence {r.get('id')} overlaps the one before it")
        text += " " * (start - len(text)) + r["text"]
    return text


def reqa_hash(folder: Path, model: str) -> str:
    """A key for the store built from these benchmark files with this model."""
    digest = hashlib.sha256(f"{REQA_STORE_VERSION}\x1f{model}\x1f".encode())
    with (folder / "sentences.jsonl").open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


# -- mapping stored sentences back to the benchmark's paragraphs ------------------------------


@dataclass(frozen=True)
class Span:
    """Where a stored sentence sits in the benchmark: article, paragraph, [start, end)."""

    doc_id: str
    paragraph: int
    start: int
    end: int


@dataclass
class MappingReport:
    """What the mapping found; `exact` counts articles whose cleaned text is the original."""

    articles: int = 0
    exact: int = 0
    sentences: int = 0
    dropped_sentences: int = 0
    dropped_paragraphs: int = 0
    extra_spans: int = 0  # occurrences a kept sentence also stands for (dropped repeats)


class _OffsetMap:
    """Offsets in a cleaned paragraph back to offsets in the benchmark's paragraph.

    Cleaning may change a paragraph (unicode normalisation, a line break inside it turned
    into a space, repeated sentences dropped); difflib's alignment carries each offset over.
    """

    def __init__(self, cleaned: str, original: str) -> None:
        self.identity = cleaned == original
        self.coverage = 1.0
        if self.identity:
            return
        self._map = np.zeros(len(cleaned) + 1, dtype=np.int64)
        matcher = difflib.SequenceMatcher(None, cleaned, original, autojunk=False)
        same = 0
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                same += i2 - i1
            for k in range(i1, i2):
                self._map[k] = j1 + min(k - i1, max(0, j2 - j1 - 1))
        self._map[len(cleaned)] = len(original)
        self.coverage = same / max(1, len(cleaned))

    def start(self, offset: int) -> int:
        return offset if self.identity else int(self._map[offset])

    def end(self, offset: int) -> int:
        """The end of a span: one past the mapped last character."""
        return offset if self.identity or offset == 0 else int(self._map[offset - 1]) + 1


def map_article(
    article: ReqaArticle, text: str, spans: Sequence[tuple[int, int]]
) -> tuple[list[list[Span]], MappingReport]:
    """For each stored sentence (offsets into the cleaned `text`), its benchmark spans.

    The cleaner keeps paragraphs in order, may drop a whole paragraph and may drop sentences
    that repeat an earlier one; a kept sentence then also stands for its exact repeats, so
    a question about the dropped copy is answered by the kept one.
    """
    report = MappingReport(articles=1, sentences=len(spans))
    originals = article.paragraphs
    if text == "\n\n".join(originals):
        report.exact = 1
    bounds, pos = [], 0
    for chunk in text.split("\n\n"):
        bounds.append((pos, pos + len(chunk)))
        pos += len(chunk) + 2
    out: list[list[Span]] = [[] for _ in spans]
    p_orig = span_i = 0
    for c_lo, c_hi in bounds:
        members = []
        while span_i < len(spans) and spans[span_i][0] <= c_hi:
            members.append(span_i)
            span_i += 1
        cleaned = text[c_lo:c_hi]
        offsets = None
        while p_orig < len(originals):
            offsets = _OffsetMap(cleaned, originals[p_orig])
            if offsets.coverage >= 0.8:
                break
            report.dropped_paragraphs += 1
            p_orig += 1
        if offsets is None or p_orig == len(originals):
            raise EvalDataError(
                f"cannot map the cleaned text of {article.doc_id} back to its paragraphs"
            )
        original = originals[p_orig]
        for i in members:
            s, e = spans[i]
            lo, hi = offsets.start(s - c_lo), offsets.end(e - c_lo)
            # Where the sentence is verbatim in the original, its own length fixes the end
            # (an alignment can stretch an end over a dropped repeat that follows it).
            at = original.find(text[s:e], max(0, lo - 2))
            if at >= 0 and at <= lo + 2:
                lo, hi = at, at + e - s
            out[i].append(Span(article.doc_id, p_orig, lo, hi))
        p_orig += 1
    report.dropped_paragraphs += len(originals) - p_orig
    # Repeats the cleaner dropped: the kept sentence it judged the same answers for them.
    kept = [(words(text[s:e]), i) for i, (s, e) in enumerate(spans)]
    covered = [(sp.paragraph, sp.start, sp.end) for found in out for sp in found]
    total = 0
    for p, paragraph in enumerate(originals):
        for sentence, s in _sentences_in(paragraph):
            total += 1
            e = s + len(sentence)
            if any(q == p and a < e and s < b for q, a, b in covered):
                continue
            tokens = words(sentence)
            hit = next((i for w, i in kept if same_words(tokens, w)), None)
            if hit is not None:
                out[hit].append(Span(article.doc_id, p, s, e))
                report.extra_spans += 1
    report.dropped_sentences = max(0, total - len(spans))
    return out, report


def _sentences_in(paragraph: str) -> Iterable[tuple[str, int]]:
    from store.text.sentences import split_sentences

    for s, e in split_sentences(paragraph):
        yield paragraph[s:e], s


def map_store(store: Store, data: ReqaData) -> tuple[dict[int, list[Span]], MappingReport]:
    """Every stored benchmark sentence's SQLite row id -> its spans in the benchmark."""
    total = MappingReport()
    out: dict[int, list[Span]] = {}
    for article in data.articles:
        key = f"{REQA_KEY_PREFIX}{article.doc_id}"
        found = [a for a in store.find(key) if a.key == key]
        if not found:
            raise EvalDataError(f"{article.doc_id} is not in the store; ingest the benchmark first")
        rows = store.sentence_spans(found[0].id)
        text = store.article_text(found[0].id)
        spans, report = map_article(article, text, [(r[1], r[2]) for r in rows])
        for r, sp in zip(rows, spans, strict=True):
            out[r[0]] = sp
        for name in ("articles", "exact", "sentences", "dropped_sentences"):
            setattr(total, name, getattr(total, name) + getattr(report, name))
        total.dropped_paragraphs += report.dropped_paragraphs
        total.extra_spans += report.extra_spans
    return out, total


# -- scoring --------------------------------------------------------------------------------


def is_correct(spans: Iterable[Span], question: ReqaQuestion) -> bool:
    """ReQA's rule: a sentence is right when its span holds one of the answers' starts."""
    return any(
        sp.doc_id == question.doc_id
        and sp.paragraph == question.paragraph_index
        and any(sp.start <= a < sp.end for a in question.answer_starts)
        for sp in spans
    )


def first_hit(ranked: Sequence[bool]) -> int | None:
    """The 1-based rank of the first correct item, or None."""
    for rank, ok in enumerate(ranked, start=1):
        if ok:
            return rank
    return None


@dataclass
class Scores:
    """MRR and recall at 1, 5, 10 over questions, from each question's first-hit rank."""

    ranks: list[int | None] = field(default_factory=list)

    def add(self, rank: int | None) -> None:
        self.ranks.append(rank)

    @property
    def n(self) -> int:
        return len(self.ranks)

    def mrr(self) -> float:
        return sum(1.0 / r for r in self.ranks if r) / self.n if self.n else 0.0

    def recall(self, k: int) -> float:
        return sum(1 for r in self.ranks if r and r <= k) / self.n if self.n else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


# -- running the benchmark ------------------------------------------------------------------


def run_reqa(
    retriever: Retriever,
    questions: list[ReqaQuestion],
    spans: dict[int, list[Span]],
    *,
    mode: Mode = "hybrid",
    latency_sample: int = 300,
    batch: int = 256,
    progress: Callable[[int], None] | None = None,
    seed: int = 0,
) -> dict[str, float | int]:
    """Ask every question through `Retriever.rank` (batched) and score the rankings.

    Latency is measured separately on `latency_sample` single `Retriever.ask` calls, the
    path a user's question takes.
    """
    scores = Scores()
    abstained = 0
    for lo in range(0, len(questions), batch):
        chunk = questions[lo : lo + batch]
        ranked = retriever.rank([q.text for q in chunk], mode=mode, depth=MRR_DEPTH)
        for q, r in zip(chunk, ranked, strict=True):
            rowids = retriever.sentence_rowids(r.positions)
            scores.add(first_hit([is_correct(spans.get(int(i), ()), q) for i in rowids]))
            abstained += int(retriever.abstains(r, mode))
        if progress:
            progress(len(chunk))
    latencies = []
    rng = random.Random(seed)
    sample = rng.sample(questions, min(latency_sample, len(questions)))
    for q in sample:
        started = time.perf_counter()
        retriever.ask(q.text, mode=mode)
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "mrr": round(scores.mrr(), 4),
        "r1": round(scores.recall(1), 4),
        "r5": round(scores.recall(5), 4),
        "r10": round(scores.recall(10), 4),
        "abstained": round(abstained / max(1, len(questions)), 4),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        "questions": len(questions),
    }


# -- a user's own cases ---------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A question and what a right first answer contains, or that nothing should answer."""

    question: str
    expect: tuple[str, ...] = ()
    answerable: bool = True
    history: tuple[str, ...] = ()  # earlier questions of the conversation, asked first


def load_cases(path: Path) -> list[Case]:
    """Cases from JSON lines: `question` and either `expect` or `"answerable": false`;
    `history`, the earlier questions of a conversation, makes the case a follow-up."""
    cases = []
    for n, row in enumerate(_read_jsonl(path), start=1):
        question = row.get("question") if isinstance(row, dict) else None
        if not isinstance(question, str) or not question.strip():
            raise EvalDataError(f"{path} case {n} has no 'question' string")
        answerable = bool(row.get("answerable", True))
        expect = row.get("expect", [])
        if isinstance(expect, str):
            expect = [expect]
        if not isinstance(expect, list) or not all(isinstance(e, str) for e in expect):
            raise EvalDataError(f"{path} case {n}: 'expect' must be a list of strings")
        if answerable and not expect:
            raise EvalDataError(
                f"{path} case {n} ({question!r}) needs 'expect' (substrings of a right "
                'answer) or "answerable": false'
            )
        history = row.get("history", [])
        if not isinstance(history, list) or not all(
            isinstance(h, str) and h.strip() for h in history
        ):
            raise EvalDataError(
                f"{path} case {n}: 'history' must be a list of the earlier questions (strings)"
            )
        cases.append(
            Case(
                question=question,
                expect=tuple(expect),
                answerable=answerable,
                history=tuple(history),
            )
        )
    if not cases:
        raise EvalDataError(f"{path} holds no cases; write one JSON object per line")
    return cases


def _matches(text: str, expect: tuple[str, ...]) -> bool:
    low = text.casefold()
    return any(e.casefold() in low for e in expect)


def run_cases(
    retriever: Retriever,
    cases: list[Case],
    *,
    mode: Mode = "hybrid",
    collections: list[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Ask every case; hit@k and MRR over the answerable ones, abstention over both kinds.

    Ranks look at the ranked sentences even when the bot abstained, so a wrong abstention
    shows up in `false_abstentions` without hiding where the right sentence was. A case with
    a `history` is a follow-up: its earlier questions are asked first, in order, each
    answer fed back as the conversation, as in real use; follow-ups are also reported
    apart (`followups`).
    """
    tallies = {"all": _Tally(), "followups": _Tally()}
    failures = []
    for case in cases:
        history = None
        if case.history:
            # Asked as a user would have (three answers, the default), as the turns kept.
            _, history = retriever.converse(
                list(case.history), k=3, mode=mode, collections=collections
            )
        answer = retriever.ask(
            case.question, k=10, mode=mode, collections=collections, history=history
        )
        kinds = [tallies["all"]] + ([tallies["followups"]] if case.history else [])
        if case.answerable:
            ranked, _ = retriever.rank_in_context(
                case.question, history, mode=mode, depth=10, collections=collections
            )
            texts = retriever.sentence_texts(ranked.positions)
            rank = first_hit([_matches(t, case.expect) for t in texts])
            for t in kinds:
                t.scores.add(rank)
                t.false_abstain += int(answer.abstained)
            if rank != 1 or answer.abstained:
                failures.append(
                    {
                        "question": case.question,
                        "history": list(case.history),
                        "understood": answer.understood,
                        "answerable": True,
                        "rank": rank,
                        "abstained": answer.abstained,
                        "got": texts[0] if texts else None,
                    }
                )
        else:
            for t in kinds:
                t.unanswerable += 1
                t.true_abstain += int(answer.abstained)
            if not answer.abstained:
                failures.append(
                    {
                        "question": case.question,
                        "history": list(case.history),
                        "understood": answer.understood,
                        "answerable": False,
                        "rank": None,
                        "abstained": False,
                        "got": answer.answers[0].text if answer.answers else None,
                    }
                )
        if progress:
            progress(1)
    out = tallies["all"].summary()
    if tallies["followups"].scores.n or tallies["followups"].unanswerable:
        out["followups"] = tallies["followups"].summary()
    out["failures"] = failures
    return out


@dataclass
class _Tally:
    scores: Scores = field(default_factory=Scores)
    false_abstain: int = 0
    true_abstain: int = 0
    unanswerable: int = 0

    def summary(self) -> dict[str, Any]:
        n, un = self.scores.n, self.unanswerable
        return {
            "answerable": n,
            "unanswerable": un,
            "hit1": round(self.scores.recall(1), 4),
            "hit3": round(self.scores.recall(3), 4),
            "mrr": round(self.scores.mrr(), 4),
            "abstained_unanswerable": round(self.true_abstain / un, 4) if un else None,
            "abstained_answerable": round(self.false_abstain / n, 4) if n else None,
        }
