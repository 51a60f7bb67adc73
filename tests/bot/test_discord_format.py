"""Discord formatting: limits, trimming at boundaries, links without previews."""

from __future__ import annotations

from bot.discord_format import (
    ABSTAIN_REPLY,
    MESSAGE_LIMIT,
    format_answer,
    format_sources,
    source_line,
    trim,
)
from retriever.models import Answer, AnswerSentence, Source

WEB = Source(
    id="a1",
    title="Harbor Bridge reopens [updated]",
    publisher="Riverside Courier",
    url="https://example.org/bridge",
    published="2025-09-08",
)
FILE = Source(id="b2", title="Orchard notes", source="/home/me/articles/orchard.md")


def answer(*texts: str, sources: tuple[Source, ...] = (WEB,)) -> Answer:
    return Answer(
        question="q",
        abstained=False,
        answers=tuple(
            AnswerSentence(
                text=t, score=1.0, start=0, end=len(t), article=sources[0], also_in=sources[1:]
            )
            for t in texts
        ),
        timings={},
    )


def test_source_is_a_link_without_preview_with_publisher_and_date() -> None:
    line = source_line(WEB)
    assert line.startswith("[Harbor Bridge reopens (updated)](<https://example.org/bridge>)")
    assert line.endswith(" · Riverside Courier · September 8, 2025")


def test_a_file_without_url_is_named() -> None:
    assert source_line(FILE) == "Orchard notes (orchard.md)"


def test_abstention_quotes_nothing() -> None:
    empty = Answer(question="q", abstained=True, answers=(), timings={})
    assert format_answer(empty) == ABSTAIN_REPLY


def test_a_fact_in_two_articles_cites_both() -> None:
    text = format_answer(answer("The bridge reopened on Monday.", sources=(WEB, FILE)))
    assert text.count("— ") == 2 and "orchard.md" in text


def test_markdown_in_quotes_is_shown_literally() -> None:
    text = format_answer(answer("Prices rose *sharply* to $5_000 in the __old__ market."))
    assert "\\*sharply\\*" in text and "\\_\\_old\\_\\_" in text


def test_long_answers_drop_whole_quotes_to_fit() -> None:
    sentences = [f"Sentence {n} " + "word " * 150 + "ends here." for n in range(3)]
    text = format_answer(answer(*sentences))
    assert len(text) <= MESSAGE_LIMIT
    assert "**1.**" in text and "**3.**" not in text
    assert text.count("“") == text.count("”") and "ends here.”" in text


def test_a_single_huge_quote_is_cut_at_a_word_and_keeps_its_source() -> None:
    huge = "Contractors " + " ".join(f"firm{n}" for n in range(800)) + "."
    text = format_answer(answer(huge))
    assert len(text) <= MESSAGE_LIMIT
    quote, source = text.split("”\n")
    assert quote.endswith("…")
    last_word = quote[:-1].split()[-1]
    assert last_word.startswith("firm") and last_word[4:].isdigit()  # a whole word
    assert source.startswith("— [Harbor Bridge")


def test_trim_prefers_a_sentence_boundary() -> None:
    text = "First sentence is here. Second one is rather longer than the first one."
    assert trim(text, 40) == "First sentence is here. …"
    assert trim(text, 200) == text
    assert trim("oneverylongwordwithoutspaces", 10) == "…"


def test_sources_are_paged_within_the_limit() -> None:
    articles = [
        Source(id=f"{n:040d}", title=f"Article {n} " + "x" * 150, url=f"https://e.org/{n}")
        for n in range(25)
    ]
    text, pages = format_sources(articles, page=3)
    assert pages == 3 and "page 3 of 3" in text and len(text) <= MESSAGE_LIMIT
    assert "Article 20" in text and "Article 19 " not in text
    assert "No articles yet" in format_sources([], page=1)[0]
