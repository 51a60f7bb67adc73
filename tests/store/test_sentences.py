from __future__ import annotations

import pytest

from store.text.sentences import split_long, split_sentences


def sentences(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


@pytest.mark.parametrize(
    "text",
    [
        "Gen. Khalifa Hafter met the press.",
        "The carrier sailed into Tobruk port on Jan. 12 with its escorts.",
        "He moved to the U.S. in 1990 and stayed.",
        "Mr. Smith and Mrs. Jones arrived at 3 p.m. sharp.",
        "Prices rose 2.5 percent, or 3.75 points, on Friday.",
        "The book by J. R. R. Tolkien sold well.",
        "Dr. Samuel K. Achebe led the repair.",
    ],
)
def test_abbreviations_decimals_and_initials_do_not_end_a_sentence(text: str) -> None:
    assert sentences(text) == [text]


def test_splits_on_real_boundaries_with_exact_offsets() -> None:
    text = '  First one here.  Second? Yes! "Quoted end." Next starts.\nNew line'
    spans = split_sentences(text)
    got = [text[s:e] for s, e in spans]
    assert got == [
        "First one here.",
        "Second?",
        "Yes!",
        '"Quoted end."',
        "Next starts.",
        "New line",
    ]
    assert all(text[s:e] == text[s:e].strip() for s, e in spans)


def test_month_abbreviation_ends_sentence_before_a_capital() -> None:
    assert sentences("Prices rose in Jan. The Fed met in March.") == [
        "Prices rose in Jan.",
        "The Fed met in March.",
    ]


def test_lowercase_after_period_does_not_split() -> None:
    assert sentences("It was approx. ten miles, i.e. far.") == [
        "It was approx. ten miles, i.e. far."
    ]


def test_split_long_cuts_at_spaces_and_covers_the_text() -> None:
    text = " ".join(f"word{i}" for i in range(100))
    pieces = split_long(text, 0, len(text), 60)
    assert all(e - s <= 60 for s, e in pieces)
    assert " ".join(text[s:e] for s, e in pieces) == text
    assert all(not text[s:e].startswith(" ") for s, e in pieces)
