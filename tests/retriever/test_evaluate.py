"""The evaluation harness: ReQA loading, mapping sentences back to paragraphs, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retriever.errors import EvalDataError
from retriever.evaluate import (
    ReqaArticle,
    ReqaQuestion,
    Scores,
    Span,
    first_hit,
    is_correct,
    load_cases,
    load_reqa,
    map_article,
    percentile,
)
from store.text.clean import clean_text

PARAS_A = [
    "Lake Ontario is the smallest of the Great Lakes. Its main outlet is the St. Lawrence River.",
    "The lake freezes rarely. Its main outlet is the St. Lawrence River. Ships cross it daily.",
]
PARAS_B = ["Mount Kenya is the highest mountain in Kenya. It is an extinct volcano."]


def _question(doc: str, para: int, *starts: int, position: int = 0) -> ReqaQuestion:
    return ReqaQuestion("q", "?", doc, para, tuple(starts), position)


def write_reqa(folder: Path) -> Path:
    """A two-article dataset in the ReQA format, offsets as ReQA writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, questions = [], []
    for doc, paras in (("Lake_Ontario", PARAS_A), ("Mount_Kenya", PARAS_B)):
        for p, text in enumerate(paras):
            parts = clean_text(text, header=False).sentences
            for i, (s, e) in enumerate(parts):
                rows.append(
                    {
                        "id": f"{doc}#p{p}#s{i}",
                        "doc_id": doc,
                        "paragraph_index": p,
                        "sentence_index": i,
                        "start": s,
                        "end": e,
                        "text": text[s:e],
                    }
                )
    outlet = PARAS_A[1].index("St. Lawrence")
    questions.append(
        {
            "id": "1",
            "text": "What is the lake's main outlet?",
            "doc_id": "Lake_Ontario",
            "paragraph_index": 1,
            "answers": [{"text": "St. Lawrence River", "answer_start": outlet}],
        }
    )
    questions.append(
        {
            "id": "2",
            "text": "What kind of volcano is Mount Kenya?",
            "doc_id": "Mount_Kenya",
            "paragraph_index": 0,
            "answers": [{"text": "extinct", "answer_start": PARAS_B[0].index("extinct")}],
        }
    )
    questions.append(
        {
            "id": "3",
            "text": "Which is the smallest Great Lake?",
            "doc_id": "Lake_Ontario",
            "paragraph_index": 0,
            "answers": [{"text": "Lake Ontario", "answer_start": 0}],
        }
    )
    for name, items in (("sentences.jsonl", rows), ("questions.jsonl", questions)):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    return folder


# -- scoring --------------------------------------------------------------------------------


def test_span_rule_needs_the_answer_start_inside_the_span() -> None:
    q = _question("A", 1, 30)
    assert is_correct([Span("A", 1, 20, 40)], q)
    assert is_correct([Span("A", 1, 30, 31)], q)
    assert not is_correct([Span("A", 1, 31, 60)], q)  # starts after the answer
    assert not is_correct([Span("A", 1, 0, 30)], q)  # ends just before it
    assert not is_correct([Span("A", 0, 20, 40)], q)  # another paragraph
    assert not is_correct([Span("B", 1, 20, 40)], q)  # another article
    assert is_correct([Span("B", 1, 20, 40), Span("A", 1, 25, 35)], q)  # any of its spans


def test_mrr_and_recall_from_first_hits() -> None:
    scores = Scores()
    for ranked in ([True, False], [False, True, True], [False] * 10, [False] * 5 + [True]):
        scores.add(first_hit(ranked))
    assert scores.ranks == [1, 2, None, 6]
    assert scores.mrr() == pytest.approx((1 + 1 / 2 + 0 + 1 / 6) / 4)
    assert scores.recall(1) == 0.25
    assert scores.recall(5) == 0.5
    assert scores.recall(10) == 0.75


def test_percentile_interpolates() -> None:
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == 25.0
    assert percentile([5.0], 95) == 5.0
    assert percentile([], 50) == 0.0


# -- loading and mapping --------------------------------------------------------------------


def test_load_reqa_rebuilds_paragraphs_and_splits(tmp_path: Path) -> None:
    data = load_reqa(write_reqa(tmp_path / "reqa"))
    assert [a.doc_id for a in data.articles] == ["Lake_Ontario", "Mount_Kenya"]
    assert data.articles[0].paragraphs == PARAS_A
    assert [q.id for q in data.split("even")] == ["1", "3"]
    assert [q.id for q in data.split("odd")] == ["2"]
    raw = data.articles[0].raw()
    assert raw.key == "reqa:Lake_Ontario" and raw.title == "Lake Ontario" and raw.pre_cleaned


def test_load_reqa_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(EvalDataError, match=r"sentences\.jsonl not found"):
        load_reqa(tmp_path)


def test_mapping_survives_a_dropped_repeat() -> None:
    """The cleaner drops paragraph 1's repeated sentence; offsets must still be right."""
    article = ReqaArticle("Lake_Ontario", PARAS_A)
    cleaned = clean_text("\n\n".join(PARAS_A), header=False)
    assert len(cleaned.sentences) == 4  # 5 sentences, one repeat dropped
    spans, report = map_article(article, cleaned.text, cleaned.sentences)
    for (s, e), found in zip(cleaned.sentences, spans, strict=True):
        first = found[0]
        assert PARAS_A[first.paragraph][first.start : first.end] == cleaned.text[s:e]
    assert [sp.paragraph for sp in spans[3]] == [1]  # "Ships cross it daily." stays in p1
    # The kept "Its main outlet..." of paragraph 0 also stands for its copy in paragraph 1,
    # so the question about paragraph 1 can still be answered.
    q = _question("Lake_Ontario", 1, PARAS_A[1].index("St. Lawrence"))
    assert any(is_correct(found, q) for found in spans)
    assert report.extra_spans == 1 and report.exact == 0


def test_mapping_handles_a_line_break_inside_a_paragraph() -> None:
    paras = ["Oxygen forms O\n2. It is reactive.", "Second paragraph here."]
    article = ReqaArticle("Oxygen", paras)
    cleaned = clean_text("\n\n".join(paras), header=False)
    spans, _ = map_article(article, cleaned.text, cleaned.sentences)
    last = spans[-1][0]
    assert (last.paragraph, paras[1][last.start : last.end]) == (1, "Second paragraph here.")
    i = next(i for i, (s, _) in enumerate(cleaned.sentences) if cleaned.text.startswith("It", s))
    reactive = spans[i][0]
    assert paras[0][reactive.start : reactive.end] == "It is reactive."


def test_cases_file_errors_name_the_case(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text('{"question": "Who?", "expect": ["x"]}\n{"question": "Why?"}\n')
    with pytest.raises(EvalDataError, match="case 2"):
        load_cases(path)
    path.write_text(
        '{"question": "Who?", "expect": "x"}\n{"question": "No?", "answerable": false}\n'
    )
    cases = load_cases(path)
    assert cases[0].expect == ("x",) and not cases[1].answerable


def test_shipped_cases_are_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "samples"
    cases = load_cases(root / "cases.jsonl")
    assert any(c.answerable for c in cases) and any(not c.answerable for c in cases)
    assert all(not c.answerable for c in load_cases(root / "unanswerable.jsonl"))
