"""Answers and listings as Discord messages: pure functions, no network, no state.

Everything here is shaped for the exit to Discord, whatever the store holds: an old store
was written before metadata was checked where it enters, and a feed's owner chooses its
titles, URLs and dates. So every field is escaped for Discord's markdown, a date is shown
only if it is one, a URL only if it is a plain http(s) address (then written `<url>`, so no
preview card), and a link's text never looks like an address, so a link cannot pretend to
lead somewhere it does not.

Discord rejects a message over 2000 characters, so everything is built to a budget: whole
answers are dropped from the end first, a quote that alone is too long is cut at a sentence
boundary, or else at a word boundary, never mid-word, and a source line is always kept,
its fields shortened (each has a cap) rather than dropped.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from pathlib import PurePath
from typing import Any
from urllib.parse import quote, urlsplit

from discord.utils import escape_mentions

MESSAGE_LIMIT = 2000
ABSTAIN_REPLY = "I couldn't find that in the articles."
# When the search engine or the database is down: said in Discord; the URL goes to the log.
BACKEND_DOWN_REPLY = (
    "I can't search the articles right now: a server I depend on isn't answering. "
    "It's logged; please try again in a few minutes."
)
ELLIPSIS = "…"

# Caps on a source line's fields (characters before escaping): with them a source line
# stays under 1000 characters, so an answer always has room for its source.
TITLE_CHARS = 150
NAME_CHARS = 80  # publisher, file name
URL_CHARS = 400  # a longer URL is named, not linked

_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s")
# Characters Discord reads as markup anywhere in a line. `[` opens a masked link; `<` a
# mention, channel, timestamp or `<url>` link (a quote keeps `<`: it shows the article's
# text as written, and the reply pings no one).
_FIELD_SPECIAL = frozenset("\\*_~|`[]<>")
_QUOTE_SPECIAL = frozenset("\\*_~|`[]")
_LINE_START = frozenset("#->")  # heading, subtext/list, block quote
# Discord's own rule for a bare link; inside a quote an address is left as written.
_BARE_URL = re.compile(r"https?://[^\s<]+[^<.,:;\"')\]\s]")
# Text a reader would take for an address: a scheme, "www.", or a dotted host name.
_LOOKS_LIKE_LINK = re.compile(
    r"(?i)[a-z][a-z0-9+.-]*:/|www\.|\b[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}\b"
)
_HOST = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*\.?")
_ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
_WRITTEN_DATE = re.compile(r"[A-Za-z0-9 ,:+\-]{6,64}")  # "Tue, 14 Mar 2017 09:00:00 GMT"


# -- fields -----------------------------------------------------------------------------


def flat(text: str | None) -> str:
    """One line of visible text: control, zero-width and direction-override characters
    removed (a right-to-left override would reverse the rest of the line), any run of
    whitespace, newlines included, made one space."""
    if not text:
        return ""
    kept = "".join(
        ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf")
    )
    return " ".join(kept.split())


def shorten(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, cut at a word if one is near, with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: max(0, limit - len(ELLIPSIS))]
    space = head.rfind(" ")
    if space > limit // 2:
        head = head[:space]
    return head.rstrip() + ELLIPSIS


def plain(text: str | None, limit: int = TITLE_CHARS) -> str:
    """A stored or user-given value shown in a message as exactly its text, on one line:
    no markup, link, heading, mention or autolinked address, at most `limit` characters
    before escaping."""
    return _escape_field(shorten(flat(text), limit))


def _escape_field(text: str) -> str:
    out = [
        "\\" + ch if ch in _FIELD_SPECIAL or (i == 0 and ch in _LINE_START) else ch
        for i, ch in enumerate(text)
    ]
    # "https\://" is shown as "https://" but Discord does not make it a link.
    return escape_mentions("".join(out).replace("://", "\\://"))


def _escape_quote(text: str) -> str:
    """An article's sentence as written, on one line: markup shown literally, addresses
    left as Discord shows them (a bare address is its own text, so it cannot mislead)."""
    text = flat(text)
    out: list[str] = []
    last = 0
    for m in _BARE_URL.finditer(text):
        out.append(_escape_chars(text[last : m.start()], _QUOTE_SPECIAL))
        out.append(m.group())
        last = m.end()
    out.append(_escape_chars(text[last:], _QUOTE_SPECIAL))
    return "".join(out)


def _escape_chars(text: str, special: frozenset[str]) -> str:
    return "".join("\\" + ch if ch in special else ch for ch in text)


def looks_like_link(text: str) -> bool:
    """True for text a reader would take for an address (`paypal.com`, `https://...`)."""
    return bool(_LOOKS_LIKE_LINK.search(text))


def human_date(value: str | None) -> str | None:
    """'2017-03-14' (or an ISO time, or a feed's RFC 2822 date) -> 'March 14, 2017';
    None for anything that is not a date, which is then not shown at all."""
    when = parse_date(value)
    return f"{when:%B} {when.day}, {when.year}" if when else None


def parse_date(value: str | None) -> date | None:
    text = (value or "").strip()
    try:
        if _ISO_DATE.fullmatch(text):
            return date.fromisoformat(text[:10])
        if _WRITTEN_DATE.fullmatch(text):
            written: datetime = parsedate_to_datetime(text)
            return written.date()
    except (ValueError, TypeError, IndexError):
        pass
    return None


def safe_url(value: str | None) -> str | None:
    """`value` as an address safe inside `<...>`: an http(s) URL with a host name and no
    user name (`https://paypal.com@evil.example` leads to evil.example), the host as the
    browser shows it (IDNA, so a look-alike `pаypal.com` reads `xn--...`), brackets and
    non-ASCII percent-encoded. None for anything else: spaces, `<>`, control characters."""
    text = (value or "").strip()
    if not text or any(
        ch.isspace() or ch in '<>"\\`' or unicodedata.category(ch) in ("Cc", "Cf") for ch in text
    ):
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
        host = (parts.hostname or "").encode("idna").decode("ascii").lower()
    except (ValueError, UnicodeError):
        return None
    if parts.scheme.lower() not in ("http", "https") or "@" in parts.netloc:
        return None
    if not _HOST.fullmatch(host):  # an IPv6 literal or stray characters
        return None
    safe = "/%:@!$&'*+,;=?"
    url = f"{parts.scheme.lower()}://{host}" + (f":{port}" if port is not None else "")
    url += quote(parts.path, safe=safe)
    if parts.query:
        url += "?" + quote(parts.query, safe=safe)
    if parts.fragment:
        url += "#" + quote(parts.fragment, safe=safe + "#")
    return url


# -- source lines -----------------------------------------------------------------------


def source_line(src: Any, *, title_chars: int = TITLE_CHARS, url_chars: int = URL_CHARS) -> str:
    """`[title](<url>) · publisher · date`; a title that reads as an address is shown as
    text, then `<url>`; a file without a URL is named instead. Under 1000 characters."""
    title = shorten(flat(src.title), title_chars) or "Untitled"
    url = safe_url(src.url)
    if url and len(url) <= url_chars:
        if looks_like_link(title):
            first = f"{_escape_field(title)} · <{url}>"
        else:
            first = f"[{_link_text(title)}](<{url}>)"
    elif url:  # too long to show whole: named, not linked (a cut address leads nowhere)
        first = f"{_escape_field(title)} · {plain(url.split('://', 1)[1], 60)}"
    elif src.source and (name := plain(PurePath(flat(src.source)).name, NAME_CHARS)):
        first = f"{_escape_field(title)} ({name})"
    else:
        first = _escape_field(title)
    parts = [first]
    if publisher := plain(src.publisher, NAME_CHARS):
        parts.append(publisher)
    if when := human_date(src.published):
        parts.append(when)
    return " · ".join(parts)


def _link_text(title: str) -> str:
    """A title safe inside `[...]`: brackets made parentheses, the rest escaped."""
    return _escape_field(title.replace("[", "(").replace("]", ")"))


# -- answers ----------------------------------------------------------------------------


def format_answer(answer: Any, *, limit: int = MESSAGE_LIMIT) -> str:
    """The reply to a question: each quote, then where it comes from, within `limit`."""
    if answer.abstained or not answer.answers:
        return ABSTAIN_REPLY if len(ABSTAIN_REPLY) <= limit else ""
    blocks = [
        (n, a.text, a.context_before, _cite([a.article, *a.also_in]))
        for n, a in enumerate(answer.answers, start=1)
    ]
    return _fit_blocks(blocks, limit)


def _cite(sources: Sequence[Any]) -> str:
    return "\n".join(f"— {source_line(s)}" for s in sources)


def _quote(n: int, text: str, before: str | None) -> str:
    """`**n.** “quote”`, or with its context: `**n.** “context **quote**”`."""
    if before:
        return f"**{n}.** “{_escape_quote(before)} **{_escape_quote(text)}**”"
    return f"**{n}.** “{_escape_quote(text)}”"


def _fit_blocks(blocks: Sequence[tuple[int, str, str | None, str]], limit: int) -> str:
    out: list[str] = []
    used = 0
    for n, text, before, cite in blocks:
        block = f"{_quote(n, text, before)}\n{cite}"
        sep = 2 if out else 0
        if used + sep + len(block) <= limit:
            out.append(block)
            used += sep + len(block)
            continue
        if not out:
            # The first answer alone is too long: keep its source, shorten its quote.
            if limit - len(cite) - 1 < 200:  # absurdly many sources: the first ones
                cite = trim_lines(cite, limit // 2) or cite.split("\n", 1)[0]
            out.append(f"{_fit_quote(n, text, before, limit - len(cite) - 1)}\n{cite}")
        break
    return "\n\n".join(out)


def _fit_quote(n: int, text: str, before: str | None, room: int) -> str:
    """The quote in `room` characters. Its context is cut from the front, so what stays
    leads into the quoted sentence; if the sentence alone is too long the context goes and
    the sentence is cut at its end. The raw text is cut, then escaped, so no cut falls
    inside an escape or between a pair of `**`."""
    if before:
        spare = room - len(_quote(n, text, "x")) + 1
        if spare >= 40:
            return _cut_to_fit(
                before, room, lambda b, size: _trim_start(b, size), lambda b: _quote(n, text, b)
            )
    return _cut_to_fit(text, room, trim, lambda t: _quote(n, t, None))


def _cut_to_fit(
    raw: str, room: int, cut: Callable[[str, int], str], render: Callable[[str], str]
) -> str:
    """render(cut(raw, size)) for the largest size found that fits in `room`."""
    budget = room
    for _ in range(30):
        shown = render(cut(raw, budget))
        if len(shown) <= room:
            return shown
        fixed = len(render(""))
        budget = min(budget - 1, budget * max(0, room - fixed) // max(1, len(shown) - fixed))
        if budget <= 0:
            break
    return render(ELLIPSIS)


def _trim_start(text: str, limit: int) -> str:
    """The end of `text` in at most `limit` characters, from a word start, after "… "."""
    if len(text) <= limit:
        return text
    tail = text[len(text) - max(0, limit - 2) :]
    space = tail.find(" ")
    if 0 <= space < len(tail) // 2:
        tail = tail[space + 1 :]
    return f"{ELLIPSIS} {tail}" if tail else ELLIPSIS


def trim(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters: at the last sentence end that fits, else at
    the last space, with an ellipsis; unchanged when it already fits."""
    if len(text) <= limit:
        return text
    budget = max(0, limit - len(ELLIPSIS) - 1)  # room for " …"
    head = text[: budget + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(head) if m.end() <= budget]
    if ends and ends[-1] > budget // 3:
        return text[: ends[-1]].rstrip() + " " + ELLIPSIS
    space = head.rfind(" ")
    if space <= 0:
        return ELLIPSIS if limit >= len(ELLIPSIS) else ""
    return text[:space].rstrip() + ELLIPSIS


def trim_lines(text: str, limit: int) -> str:
    """Whole lines of `text` that fit in `limit` characters."""
    out: list[str] = []
    used = 0
    for line in text.splitlines():
        if used + len(line) + (1 if out else 0) > limit:
            break
        used += len(line) + (1 if out else 0)
        out.append(line)
    return "\n".join(out)


# -- listings and summaries -------------------------------------------------------------


def format_sources(
    articles: Sequence[Any], *, page: int, per_page: int = 10, limit: int = MESSAGE_LIMIT
) -> tuple[str, int]:
    """One page of the articles a server can ask about, and the number of pages."""
    if not articles:
        return "No articles yet. Someone with Manage Server can add some with `/ingest`.", 1
    pages = (len(articles) + per_page - 1) // per_page
    page = min(max(page, 1), pages)
    start = (page - 1) * per_page
    header = f"**Articles** ({len(articles)}), page {page} of {pages}"
    shown = articles[start : start + per_page]
    # Long titles and addresses are shortened further, so the whole page fits.
    for title_chars, url_chars in ((TITLE_CHARS, URL_CHARS), (80, 160), (40, 100)):
        lines = [header]
        for a in shown:
            short_id = re.sub(r"[^0-9A-Za-z]", "", str(a.id))[:10]
            line = source_line(a, title_chars=title_chars, url_chars=url_chars)
            lines.append(f"`{short_id}` {line}")
        text = "\n".join(lines)
        if len(text) <= limit:
            return text, pages
    kept = trim_lines(text, limit - 60)
    left = len(lines) - len(kept.splitlines())
    return f"{kept}\n…and {left} more on this page; their titles are too long to list.", pages


def format_ingest(report: Any, *, limit: int = MESSAGE_LIMIT) -> str:
    """What `/ingest` did: the titles added, updated and unchanged, and what was skipped."""
    lines = []
    for label, titles in (
        ("Added", report.added),
        ("Updated", report.updated),
        ("Unchanged", report.unchanged),
    ):
        if titles:
            shown = ", ".join(f"“{plain(t, 80)}”" for t in titles[:10])
            more = f" and {len(titles) - 10} more" if len(titles) > 10 else ""
            lines.append(f"{label}: {shown}{more}")
    for source, reason in report.skipped[:5]:
        lines.append(f"Skipped {plain(source, 100)}: {plain(reason, 300)}")
    return trim_lines("\n".join(lines), limit) or "Nothing to add."


def format_forgotten(titles: Sequence[str]) -> str:
    """The reply to `/forget`: the titles it removed."""
    names = ", ".join(f"“{plain(t, 80)}”" for t in titles[:10])  # under 1800 characters
    more = f" and {len(titles) - 10} more" if len(titles) > 10 else ""
    return f"Forgot {names}{more}."
