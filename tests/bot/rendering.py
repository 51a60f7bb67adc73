"""What a Discord user sees in a message: its links, headings and bold, parsed independently.

The bot's own escaping is not trusted to check itself: the message is parsed by markdown-it
(CommonMark), whose masked links, `<...>` links, headings, block quotes, backslash escapes
and `**` bold are the rules Discord follows too. Discord also turns a bare `https://...`
into a link; `bare_urls` finds those the way Discord's own rule does (an escaped character
breaks the match).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markdown_it import MarkdownIt

from bot.discord_format import MESSAGE_LIMIT

EVIL = "evil.example"  # the host the hostile test fields try to link to

_MD = MarkdownIt("commonmark")
# Discord's autolink rule; a backslash-escaped character cannot be part of it.
_BARE_URL = re.compile(r"https?://[^\s<]+[^<.,:;\"')\]\s]")


@dataclass
class Rendered:
    links: list[tuple[str, str]] = field(default_factory=list)  # (text shown, target)
    headings: list[str] = field(default_factory=list)
    quotes: int = 0  # block quotes
    bold_open: int = 0
    bold_close: int = 0
    text: str = ""  # what is shown, markup removed


def render(content: str) -> Rendered:
    out = Rendered()
    shown: list[str] = []
    tokens = _MD.parse(content)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open":
            out.headings.append(tokens[i + 1].content)
        elif tok.type == "blockquote_open":
            out.quotes += 1
        elif tok.type == "inline":
            _inline(tok.children or [], out, shown)
            shown.append("\n")
    out.text = "".join(shown)
    return out


def _inline(children: list, out: Rendered, shown: list[str]) -> None:  # type: ignore[type-arg]
    link: tuple[str, list[str]] | None = None
    for tok in children:
        if tok.type == "link_open":
            link = (str(tok.attrs.get("href", "")), [])
        elif tok.type == "link_close" and link is not None:
            out.links.append(("".join(link[1]), link[0]))
            link = None
        elif tok.type == "strong_open":
            out.bold_open += 1
        elif tok.type == "strong_close":
            out.bold_close += 1
        elif tok.type in ("text", "code_inline"):
            shown.append(tok.content)
            if link is not None:
                link[1].append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            shown.append("\n")


def bare_urls(content: str) -> list[str]:
    """URLs Discord would link on its own: outside `<...>` and masked-link targets."""
    plain = re.sub(r"\\.", "\x00", content)  # an escaped character breaks a URL
    plain = re.sub(r"\]\(<[^>]*>\)|<[^>\s]*>", " ", plain)
    return _BARE_URL.findall(plain)


def misleading_links(content: str) -> list[tuple[str, str]]:
    """Links whose text reads as an address but is not the address they lead to."""
    return [(t, href) for t, href in render(content).links if looks_like_a_link(t) and t != href]


def looks_like_a_link(text: str) -> bool:
    """Text a reader would take for an address: a scheme, www., or a dotted host name."""
    return bool(
        re.search(r"(?i)[a-z][a-z0-9+.-]*:/|www\.|\b[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}\b", text)
    )


def assert_safe(text: str) -> Rendered:
    """Nothing the hostile fields inject: no link to evil.example, no link whose text reads
    as another address, no heading, block quote, bare URL or unbalanced bold; the length
    within Discord's limit."""
    seen = render(text)
    assert not [link for link in seen.links if EVIL in link[1]], seen.links
    assert not misleading_links(text), seen.links
    assert not seen.headings and not seen.quotes
    assert not bare_urls(text), bare_urls(text)
    assert "FREE NITRO" not in text and "Official statement" not in text
    assert seen.bold_open == seen.bold_close and "**" not in seen.text
    assert len(text) <= MESSAGE_LIMIT
    return seen
