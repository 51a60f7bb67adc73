from __future__ import annotations

from store.text.clean import clean_text, is_furniture, parse_date
from tests.conftest import SAMPLE_ARTICLE, need_shared


def test_real_pasted_article_keeps_each_fact_once_and_no_furniture() -> None:
    raw = need_shared(SAMPLE_ARTICLE).read_text(encoding="utf-8")
    cleaned = clean_text(raw)
    assert cleaned.title == "Russian elite units land on Egypt-Libya border"
    assert cleaned.publisher == "DEBKA"
    assert cleaned.published == "2017-03-14"
    sentences = [cleaned.text[s:e] for s, e in cleaned.sentences]
    # The body is printed twice with small edits: every fact once.
    assert sum("Sidi Barrani" in s for s in sentences) == 1
    assert sum("Tobruk port on Jan. 12" in s for s in sentences) == 1
    assert sum("Abdel-Fatteh El-Sisi" in s for s in sentences) == 1
    assert sum("taken delivery of Russian fighter jets" in s for s in sentences) == 1
    # Both spellings of the general's name survive where they are different facts.
    assert any("Haftar" in s for s in sentences) and any("Hafter" in s for s in sentences)
    for junk in ("Leave a Reply", "Comments »", "Russian special Ops forces", "DEBKA\n"):
        assert junk not in cleaned.text
    assert not cleaned.text.startswith("Russian elite units land")  # the title is metadata
    assert "Leave a Reply" in cleaned.dropped


def test_sentence_offsets_index_the_cleaned_text() -> None:
    cleaned = clean_text(
        "Title line\n\nOne sentence here is long enough. Another follows it.\n\n"
        "A second paragraph with words enough to count as body text."
    )
    for s, e in cleaned.sentences:
        piece = cleaned.text[s:e]
        assert piece == piece.strip() and piece
    assert cleaned.text.split("\n\n")[0] == (
        "One sentence here is long enough. Another follows it."
    )


def test_repeated_paragraph_with_small_edit_is_kept_once() -> None:
    body = (
        "The council voted on Tuesday to build the new depot near the river bank. "
        "It will open in 2028."
    )
    edited = (
        "The council voted on Tuesday to build a new depot near the river bank. "
        "It will open in 2028."
    )
    cleaned = clean_text(f"{body}\n\n{edited}", title="Depot")
    assert cleaned.text == body


def test_different_sentences_are_not_merged() -> None:
    text = (
        "The bridge reopened on Monday after a two-year repair of its cables.\n\n"
        "The tunnel closed on Monday for a two-week repair of its lights."
    )
    cleaned = clean_text(text, title="Works")
    assert len(cleaned.sentences) == 2


def test_furniture_lines() -> None:
    for line in (
        "Leave a Reply",
        "March 14, 2017 | Comments »",
        "Share this:",
        "Tweet",
        "Subscribe to our newsletter",
        "Related articles",
        "12 Comments",
    ):
        assert is_furniture(line), line
    for line in (
        "Comments by the minister were sharply criticised in parliament on Friday.",
        "Share prices fell.",
    ):
        assert not is_furniture(line), line


def test_header_lines_become_metadata() -> None:
    raw = (
        "Bus depot approved\nValley Times\nBy Ana Silva\nNov. 12, 2025\n"
        "The council voted 7 to 2 on Tuesday to build a new bus depot on the old gasworks."
    )
    cleaned = clean_text(raw)
    assert (cleaned.title, cleaned.publisher, cleaned.author, cleaned.published) == (
        "Bus depot approved",
        "Valley Times",
        "Ana Silva",
        "2025-11-12",
    )
    assert cleaned.text.startswith("The council voted")


def test_hard_wrapped_text_is_rejoined() -> None:
    raw = (
        "Wrapped article\n\n"
        "This paragraph was wrapped at a fixed width by an editor so that\n"
        "each line is about sixty characters long, which splits the\n"
        "sentences across lines. The splitter must see them whole."
    )
    cleaned = clean_text(raw)
    assert [cleaned.text[s:e] for s, e in cleaned.sentences][-1] == (
        "The splitter must see them whole."
    )


def test_parse_date_forms() -> None:
    assert parse_date("March 14, 2017 | Comments »") == "2017-03-14"
    assert parse_date("Published 3 Sept 2024") == "2024-09-03"
    assert parse_date("2021-02-28T10:00") == "2021-02-28"
    assert parse_date("no date here") is None


def test_sentences_that_differ_in_numbers_are_different_facts() -> None:
    text = (
        "Bus route 14 returns to the bridge on Sept. 15 after the long detour.\n\n"
        "Bus route 15 returns to the bridge on Sept. 22 after the long detour."
    )
    assert len(clean_text(text, title="Buses").sentences) == 2


def test_a_run_on_line_is_cut_into_bounded_sentences_and_loses_nothing() -> None:
    run_on = " ".join(f"w{i}" for i in range(40_000))  # one 250 KB "sentence"
    cleaned = clean_text(run_on, header=False)
    assert max(e - s for s, e in cleaned.sentences) <= 2000
    assert " ".join(cleaned.text[s:e] for s, e in cleaned.sentences) == run_on


def test_a_copy_is_found_among_thousands_of_sentences_sharing_common_phrases() -> None:
    # Every sentence shares "one of the" and "in the city" with thousands of others; the
    # repeated one is still told from them by its own words.
    filler = " ".join(
        f"It was one of the {n} quiet days in the city for resident number {n}."
        for n in range(3000)
    )
    fact = "The ferry terminal in the city will close for repairs from the first of June."
    edited = "The ferry terminal in the city will shut for repairs from the first of June."
    cleaned = clean_text(f"{fact} {filler}\n\n{edited}", header=False)
    assert fact in cleaned.text and edited not in cleaned.text
