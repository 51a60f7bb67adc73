"""Discord formatting: limits, trimming at boundaries, links without previews."""

from __future__ import annotations

import re

from bot.discord_format import (
    ABSTAIN_REPLY,
    MESSAGE_LIMIT,
    format_answer,
    format_sources,
    source_line,
    trim,
)
from retriever.models import Answer, AnswerSentence, Source
from tests.bot.rendering import assert_safe, bare_urls, misleading_links, render

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


# -- hostile metadata, as an old store (written before entry validation) may still hold it --

PHISH_DATE = "[Official statement](https://evil.example/login)"
BREAKOUT_URL = ">) [Verify your account](https://evil.example/phish"
HEADING_DATE = "3 October 2025\n# FREE NITRO CLICK BELOW"


def hostile(**fields: object) -> Source:
    values: dict[str, object] = {
        "id": "c3" * 20,
        "title": "Harbor Bridge reopens",
        "publisher": "Riverside Courier",
        "url": "https://example.org/bridge",
        "published": "2025-09-08",
    }
    values.update(fields)
    return Source(**values)  # type: ignore[arg-type]


def shown(source: Source) -> tuple[str, str]:
    """The reply to a question answered from `source`, and its sources listing."""
    reply = format_answer(answer("The bridge reopened on Monday.", sources=(source,)))
    listing, _ = format_sources([source], page=1)
    return reply, listing


def test_a_masked_link_as_the_date_is_not_shown() -> None:
    for text in shown(hostile(published=PHISH_DATE)):
        seen = assert_safe(text)
        assert seen.links == [("Harbor Bridge reopens", "https://example.org/bridge")]
        assert "Riverside Courier" in text


def test_a_url_that_breaks_out_of_its_brackets_is_not_linked() -> None:
    for text in shown(hostile(url=BREAKOUT_URL)):
        seen = assert_safe(text)
        assert "Verify your account" not in seen.text
        assert "Harbor Bridge reopens" in seen.text and "September 8, 2025" in text


def test_a_newline_in_the_date_makes_no_heading() -> None:
    for text in shown(hostile(published=HEADING_DATE)):
        assert_safe(text)


def test_a_title_that_is_a_url_is_not_the_text_of_a_link() -> None:
    for text in shown(hostile(title="https://www.paypal.com/signin", url="https://evil.example/a")):
        seen = render(text)
        assert not misleading_links(text), seen.links
        assert not bare_urls(text)
        assert "www.paypal.com/signin" in seen.text  # shown, as plain text
        # Where the citation really leads is shown as the address itself.
        assert ("https://evil.example/a", "https://evil.example/a") in seen.links


def test_a_title_naming_a_domain_is_not_the_text_of_a_link() -> None:
    reply, _ = shown(hostile(title="Sign in at paypal.com", url="https://evil.example/a"))
    assert not misleading_links(reply)
    assert ("https://evil.example/a", "https://evil.example/a") in render(reply).links


def test_markup_and_mentions_in_publisher_and_file_name_are_shown_literally() -> None:
    source = hostile(
        url=None,
        publisher="[Click](https://evil.example/x) @everyone <@&123456789012345678> ||spoiler||",
        source="/tmp/# [a](https://evil.example/y).md",
    )
    for text in shown(source):
        seen = render(text)
        assert not seen.links and not seen.headings and not bare_urls(text)
        assert "@everyone" not in text and "<@&" not in text
        assert "||" not in text.replace("\\|", "")
        assert "[Click](https://evil.example/x)" in seen.text  # literally, as written


def test_a_url_with_a_password_or_a_lookalike_host_is_not_linked_as_written() -> None:
    line = source_line(hostile(url="https://www.paypal.com@evil.example/login"))
    assert "paypal.com@" not in line
    idn = source_line(hostile(url="https://xn--pypal-4ve.com/login"))
    assert "<https://xn--pypal-4ve.com/login>" in idn
    cyrillic = source_line(hostile(url="https://pаypal.com/login"))  # a Cyrillic а
    assert "pаypal" not in cyrillic
    assert "xn--" in cyrillic  # the host as the browser will show it


def test_a_huge_title_or_url_still_shows_the_source_line() -> None:
    huge_title = hostile(title="Harbor " + "very long title " * 160)
    huge_url = hostile(url="https://example.org/" + "a" * 2500)
    for source in (huge_title, huge_url):
        for text in shown(source):
            assert len(text) <= MESSAGE_LIMIT
            assert "Harbor" in text and "Riverside Courier" in text
            assert "September 8, 2025" in text
        reply, _ = shown(source)
        assert "— " in reply and "The bridge reopened on Monday." in reply
    assert "…" in source_line(huge_title)


def test_many_huge_sources_keep_at_least_the_first_source_line() -> None:
    sources = tuple(hostile(id=f"{n:040d}", title="T " * 1200) for n in range(6))
    reply = format_answer(answer("The bridge reopened on Monday.", sources=sources))
    assert len(reply) <= MESSAGE_LIMIT
    assert reply.count("\n— ") >= 1 and "The bridge reopened on Monday." in reply


def test_a_long_quote_with_context_is_cut_without_breaking_the_bold() -> None:
    before = "Before the vote, " + " ".join(f"member{n} spoke;" for n in range(150)) + " then."
    short = "The council approved the *harbor* plan by nine votes to two."
    long = "The council " + " ".join(f"approved item{n} *quickly*" for n in range(200)) + "."
    for text, bold in ((short, 2), (long, 1)):  # the context is cut, or dropped
        a = AnswerSentence(
            text=text, score=1.0, start=0, end=len(text), article=WEB, context_before=before
        )
        reply = format_answer(Answer(question="q", abstained=False, answers=(a,), timings={}))
        assert len(reply) <= MESSAGE_LIMIT
        seen = render(reply)
        assert seen.bold_open == seen.bold_close == bold  # the number, the quoted sentence
        assert "**" not in seen.text and "The council" in seen.text
        if text is short:  # the quoted sentence whole, after the end of its context
            assert "… " in reply and "then. **The council approved" in reply
            assert "nine votes to two.**”" in reply
        assert "— [Harbor Bridge reopens (updated)]" in reply


def test_a_quote_is_cut_without_splitting_an_escape() -> None:
    text = "Stars " + "*" * 1500 + " " + "_" * 1500 + " end."
    reply = format_answer(answer(text))
    assert len(reply) <= MESSAGE_LIMIT
    quote = reply.split("”\n")[0]
    assert not re.search(r"(?<!\\)(\\\\)*\\…", quote)  # no escape eaten by the ellipsis
    seen = render(reply)
    assert seen.bold_open == seen.bold_close == 1


def test_a_masked_link_in_quoted_text_is_shown_literally() -> None:
    text = "Read [our notes](https://example.org/a) and [Verify](https://evil.example/b) now."
    seen = render(format_answer(answer(text)))
    assert [target for _, target in seen.links] == ["https://example.org/bridge"]
    assert "[Verify](https://evil.example/b)" in seen.text


def test_a_page_of_long_titles_and_urls_lists_every_article() -> None:
    articles = [
        Source(
            id=f"{n:040d}",
            title=f"Article {n} " + "long title " * 20,
            url=f"https://news.example.org/{n}/" + "path/" * 40,
            publisher="Harbor Gazette",
            published="2025-10-03",
        )
        for n in range(10)
    ]
    text, _ = format_sources(articles, page=1)
    assert len(text) <= MESSAGE_LIMIT
    assert all(f"Article {n} " in text for n in range(10))
    assert text.count("Harbor Gazette") == 10
