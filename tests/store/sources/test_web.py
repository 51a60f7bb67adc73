"""Fetching pages and feeds from a local web site started by the tests, and the SSRF guard."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from store.db import Store
from store.errors import FetchError, SkipSource
from store.ingest import Ingestor
from store.models import RawArticle
from store.sources.feeds import is_feed
from store.sources.files import load_file
from store.sources.guard import address_problem
from store.sources.html import html_to_article
from store.sources.http import fetch
from store.sources.read import fetch_articles
from tests.doubles import HashingEmbedder
from tests.store.web_fixtures.site import CHANGING_V1, CHANGING_V2, HERE, Site, serve

BOILERPLATE = [
    "cookies",
    "Subscribe to the Ledger",
    "Weather forecast",
    "Share on Facebook",
    "riverwalker77",
    "knees are grateful",
    "Related articles",
    "Mill museum wins",
    "All rights reserved",
    "Privacy policy",
]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    with serve() as running:
        yield running


class CountingEmbedder(HashingEmbedder):
    """Counts the texts it embeds, to show an unchanged page costs nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def encode_documents(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        self.seen.extend(texts)
        return super().encode_documents(texts, batch_size)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "qabot.sqlite3", model="hashing-64", dim=64)
    yield s
    s.close()


def articles(items: Iterator[RawArticle | SkipSource]) -> list[RawArticle]:
    out = list(items)
    skipped = [i for i in out if isinstance(i, SkipSource)]
    assert not skipped, skipped
    return [i for i in out if isinstance(i, RawArticle)]


def stored_sentences(store: Store) -> list[str]:
    return [row[0] for row in store.execute("SELECT text FROM sentences")]


# -- pages --------------------------------------------------------------------------------


def test_page_keeps_only_the_article_and_its_metadata(site: Site) -> None:
    [article] = articles(fetch_articles(site.url("/article?utm_source=feed"), allow_private=True))
    assert article.key == article.url == site.url("/article")  # the canonical link
    assert article.source == site.url("/article?utm_source=feed")
    assert article.title == "Harwick opens a footbridge built from recycled steel"
    assert article.publisher == "The Valley Ledger"
    assert article.author == "Mara Okonkwo"
    assert article.published == "2024-03-18"
    assert article.pre_cleaned
    paragraphs = article.text.split("\n\n")
    assert len(paragraphs) == 5
    assert paragraphs[0].startswith("The town of Harwick opened its new footbridge")
    assert paragraphs[-1].endswith("weatherproof paint to the handrails.")
    for junk in BOILERPLATE:
        assert junk not in article.text


def test_ingested_page_has_no_boilerplate_sentences(site: Site, store: Store) -> None:
    report = Ingestor(store, HashingEmbedder()).ingest(
        fetch_articles(site.url("/article"), allow_private=True)
    )
    assert len(report.added) == 1 and not report.skipped
    sentences = stored_sentences(store)
    assert any("forty-two metres long" in s for s in sentences)
    for junk in BOILERPLATE:
        assert not any(junk in s for s in sentences), junk
    row = store.execute("SELECT key, url, publisher, author, published, title FROM articles")
    assert row.fetchone() == (
        site.url("/article"),
        site.url("/article"),
        "The Valley Ledger",
        "Mara Okonkwo",
        "2024-03-18",
        "Harwick opens a footbridge built from recycled steel",
    )


def test_changed_page_replaces_its_version_and_unchanged_costs_nothing(
    site: Site, store: Store
) -> None:
    embedder = CountingEmbedder()
    ingestor = Ingestor(store, embedder)
    url = site.url("/changing")
    first = ingestor.ingest(fetch_articles(url, allow_private=True))
    assert len(first.added) == 1

    embedder.seen.clear()
    again = ingestor.ingest(fetch_articles(url, allow_private=True))
    assert len(again.unchanged) == 1 and not again.added and not again.updated
    assert embedder.seen == []

    site.state["changing"] = CHANGING_V2
    try:
        changed = ingestor.ingest(fetch_articles(url, allow_private=True))
    finally:
        site.state["changing"] = CHANGING_V1
    assert len(changed.updated) == 1 and not changed.added
    assert [r[0] for r in store.execute("SELECT key FROM articles")] == [url]
    text = store.execute("SELECT text FROM articles").fetchone()[0]
    assert "every twenty minutes" in text and "thirty" not in text
    # only the changed sentence (and its passage) needed new vectors
    assert 0 < len(embedder.seen) <= 3


def test_gzip_page_is_decoded(site: Site) -> None:
    response = fetch(site.url("/gzip"), allow_private=True)
    assert response.body.startswith(b"<!DOCTYPE html>")
    assert site.requests[-1][1].get("Accept-Encoding") == "gzip, deflate"
    [article] = articles(fetch_articles(site.url("/gzip"), allow_private=True))
    assert article.author == "Mara Okonkwo"


def test_requests_say_who_is_asking(site: Site) -> None:
    fetch(site.url("/article"), allow_private=True)
    assert site.requests[-1][1]["User-Agent"] == "qabot/0.1"


def test_redirect_is_followed_to_the_article(site: Site) -> None:
    response = fetch(site.url("/redirect"), allow_private=True)
    assert response.url == site.url("/article")
    [article] = articles(fetch_articles(site.url("/redirect"), allow_private=True))
    assert article.key == site.url("/article")


def test_redirect_loop_and_too_many_redirects_are_refused(site: Site) -> None:
    with pytest.raises(FetchError, match="loop"):
        fetch(site.url("/loop-a"), allow_private=True)
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetch(site.url("/hop/1"), allow_private=True)
    assert fetch(site.url("/hop/1"), allow_private=True, max_redirects=25).status == 200


def test_huge_response_is_refused(site: Site) -> None:
    with pytest.raises(FetchError, match="larger than 100,000 bytes"):
        fetch(site.url("/huge"), allow_private=True, max_bytes=100_000)


def test_gzip_bomb_is_refused_by_its_decoded_size(site: Site) -> None:
    with pytest.raises(FetchError, match="larger than 2,000 bytes"):
        fetch(site.url("/gzip"), allow_private=True, max_bytes=2_000)


def test_slow_server_times_out(site: Site) -> None:
    with pytest.raises(FetchError, match=r"no answer within 0.3 s"):
        fetch(site.url("/slow"), allow_private=True, timeout=0.3)


@pytest.mark.parametrize(("path", "kind"), [("/report.pdf", "a PDF"), ("/logo.png", "an image")])
def test_non_html_is_refused_with_a_reason(site: Site, path: str, kind: str) -> None:
    with pytest.raises(FetchError, match=rf"{kind} .* save its text as a \.txt file"):
        fetch(site.url(path), allow_private=True)
    [skip] = list(fetch_articles(site.url(path), allow_private=True))
    assert isinstance(skip, SkipSource) and skip.source == site.url(path)
    assert skip.reason.startswith(kind)


def test_missing_page_and_empty_page_are_skipped(site: Site) -> None:
    [skip] = list(fetch_articles(site.url("/nothing-here"), allow_private=True))
    assert isinstance(skip, SkipSource) and "404" in skip.reason
    [skip] = list(fetch_articles(site.url("/empty"), allow_private=True))
    assert isinstance(skip, SkipSource) and "no article text" in skip.reason


def test_errors_are_one_line(site: Site) -> None:
    for path in ("/report.pdf", "/loop-a", "/nothing-here"):
        with pytest.raises(FetchError) as info:
            fetch(site.url(path), allow_private=True)
        assert "\n" not in str(info.value) and str(info.value).startswith(site.url(path))


def test_html_file_gets_metadata_through_the_loader(tmp_path: Path) -> None:
    page = tmp_path / "footbridge.html"
    page.write_text(
        (HERE / "article.html").read_text().replace("__BASE__", "https://ledger.example")
    )
    [article] = load_file(page)
    assert isinstance(article, RawArticle)
    assert article.key == "https://ledger.example/article"
    assert article.author == "Mara Okonkwo"
    no_canonical = tmp_path / "plain.html"
    no_canonical.write_text(
        (HERE / "story2.html")
        .read_text()
        .replace('<link rel="canonical" href="__BASE__/story2">', "")
    )
    [article] = load_file(no_canonical)
    assert isinstance(article, RawArticle)
    assert article.key == no_canonical.resolve().as_uri() and article.url is None


def test_html_without_article_text_raises() -> None:
    with pytest.raises(FetchError, match="no article text"):
        html_to_article("<html><body><nav>Home</nav></body></html>", url="https://a.example/")


# -- feeds --------------------------------------------------------------------------------


def test_feeds_are_recognised_by_content() -> None:
    assert is_feed((HERE / "rss.xml").read_bytes())
    assert is_feed((HERE / "atom.xml").read_bytes())
    assert is_feed(b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- hi -->\n<rdf:RDF xmlns:rdf="x">')
    assert not is_feed((HERE / "article.html").read_bytes())
    assert not is_feed(b'<?xml version="1.0"?><svg></svg>')


def test_rss_with_summaries_reads_the_linked_pages(site: Site) -> None:
    found = articles(fetch_articles(site.url("/rss.xml"), allow_private=True))
    assert [a.guid for a in found] == ["ledger-2024-0318-footbridge", "ledger-2024-0402-frost-fans"]
    footbridge, frost = found
    assert footbridge.key == site.url("/article")
    assert "forty-two metres long" in footbridge.text  # the page, not the one-line summary
    assert frost.author == "Tomasz Reyes" and frost.published == "2024-04-02"
    assert "twelve-metre mast" in frost.text


def test_atom_with_full_content_is_not_fetched_again(site: Site) -> None:
    before = len(site.requests)
    found = articles(fetch_articles(site.url("/updates"), allow_private=True))
    assert len(site.requests) == before + 1  # the feed only; entries carry their text
    seeds, swifts = found
    assert seeds.guid == "urn:uuid:field-notes-seed-library"
    assert seeds.key == seeds.url == site.url("/notes/seed-library")
    assert seeds.publisher == "Brennel Field Notes"
    assert seeds.author == "Odile Haverkamp" and seeds.published == "2024-05-08"
    assert seeds.text.count("\n\n") == 7
    assert "card-catalogue cabinet" in seeds.text
    assert "central Africa" in swifts.text


def test_known_entries_are_not_fetched(site: Site) -> None:
    before = site.hits("/story2")
    found = articles(
        fetch_articles(
            site.url("/rss.xml"),
            allow_private=True,
            known=lambda ref: ref == "ledger-2024-0402-frost-fans",
        )
    )
    assert [a.guid for a in found] == ["ledger-2024-0318-footbridge"]
    assert site.hits("/story2") == before


def test_failing_entry_is_skipped_and_the_others_go_on(site: Site) -> None:
    items = list(fetch_articles(site.url("/mixed-feed"), allow_private=True))
    [skip] = [i for i in items if isinstance(i, SkipSource)]
    [good] = [i for i in items if isinstance(i, RawArticle)]
    assert skip.source == site.url("/missing") and "404" in skip.reason
    assert good.key == site.url("/article")


def test_feed_entries_are_answered_from_the_store(site: Site, store: Store) -> None:
    ingestor = Ingestor(store, HashingEmbedder())
    report = ingestor.ingest(
        fetch_articles(site.url("/rss.xml"), allow_private=True, known=store.is_known)
    )
    assert len(report.added) == 2
    again = list(fetch_articles(site.url("/rss.xml"), allow_private=True, known=store.is_known))
    assert again == []


@pytest.mark.slow
def test_answer_cites_the_page_url(site: Site, tmp_path: Path, real_embedder) -> None:  # type: ignore[no-untyped-def]
    from retriever.retriever import Retriever

    store = Store(tmp_path / "qabot.sqlite3", model=real_embedder.name, dim=real_embedder.dim)
    try:
        Ingestor(store, real_embedder).ingest(
            fetch_articles(site.url("/rss.xml"), allow_private=True)
        )
        answer = Retriever(store, real_embedder, tmp_path / "index").ask(
            "How long is the new footbridge in Harwick?"
        )
        assert not answer.abstained
        assert answer.answers[0].article.url == site.url("/article")
        assert "forty-two metres" in answer.answers[0].text
    finally:
        store.close()


# -- the SSRF guard -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.5",
        "172.31.255.1",
        "192.168.1.20",
        "127.0.0.1",
        "169.254.169.254",
        "169.254.10.1",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "::",
        "fd00::1",
        "fd00:ec2::254",
        "fe80::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
    ],
)
def test_private_addresses_are_refused(address: str) -> None:
    assert address_problem(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_problem(address) is None


def test_metadata_address_is_named() -> None:
    assert address_problem("169.254.169.254") == "a cloud metadata address"
    assert "carrier-grade NAT" in str(address_problem("100.64.0.1"))


def test_loopback_urls_are_refused_without_allow_private(site: Site) -> None:
    port = site.base.rsplit(":", 1)[1]
    before = len(site.requests)
    for url in (f"http://127.0.0.1:{port}/article", f"http://localhost:{port}/article"):
        with pytest.raises(FetchError, match=r"loopback address.*--allow-private"):
            fetch(url, allow_private=False)
        [skip] = list(fetch_articles(url, allow_private=False))
        assert isinstance(skip, SkipSource) and "loopback" in skip.reason
    assert len(site.requests) == before  # refused before connecting


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://ftp.example.org/file.txt", "gopher://x.example/"]
)
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(FetchError, match="only http and https"):
        fetch(url, allow_private=True)


PUBLIC_IP = "93.184.216.34"


@pytest.fixture
def public_name(site: Site, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """`news.example` resolves to a public address whose connections land on the test site,
    so the real fetch code (resolve, check, connect to the vetted address) runs end to end.
    Returns the addresses connected to."""
    return route_public_names(monkeypatch, int(site.base.rsplit(":", 1)[1]))


def route_public_names(monkeypatch: pytest.MonkeyPatch, port: int) -> list[tuple[str, int]]:
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.create_connection
    connected: list[tuple[str, int]] = []

    def getaddrinfo(host, port_, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host in ("news.example", "other.example"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_IP, port_))]
        if host == "rebind.example":
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_IP, port_)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port_)),
            ]
        return real_getaddrinfo(host, port_, *args, **kwargs)

    def create_connection(address, *args, **kwargs):  # type: ignore[no-untyped-def]
        connected.append(address)
        if address[0] == PUBLIC_IP:
            address = ("127.0.0.1", port)
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    return connected


def test_public_host_is_fetched_at_its_vetted_address(
    site: Site, public_name: list[tuple[str, int]]
) -> None:
    port = site.base.rsplit(":", 1)[1]
    response = fetch(f"http://news.example:{port}/article", allow_private=False)
    assert response.status == 200
    assert public_name == [(PUBLIC_IP, int(port))]
    assert site.requests[-1][1]["Host"] == f"news.example:{port}"


def test_redirect_to_a_private_address_is_refused(
    site: Site, public_name: list[tuple[str, int]]
) -> None:
    port = site.base.rsplit(":", 1)[1]
    target = f"http://127.0.0.1:{port}/article"
    with pytest.raises(FetchError, match="loopback"):
        fetch(f"http://news.example:{port}/redirect-to?url={target}", allow_private=False)
    assert len(public_name) == 1  # the first hop only; the private one was never contacted
    target = "http://169.254.169.254/latest/meta-data/"
    with pytest.raises(FetchError, match="metadata"):
        fetch(f"http://news.example:{port}/redirect-to?url={target}", allow_private=False)


def test_host_with_any_private_address_is_refused(
    site: Site, public_name: list[tuple[str, int]]
) -> None:
    port = site.base.rsplit(":", 1)[1]
    with pytest.raises(FetchError, match=r"10\.0\.0\.7, a private address"):
        fetch(f"http://rebind.example:{port}/article", allow_private=False)
    assert public_name == []


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Path]]:
    """The site over HTTPS with a throwaway certificate for news.example."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=news.example"),
            *("-addext", "subjectAltName=DNS:news.example"),
        ],
        check=True,
        capture_output=True,
    )
    with serve(tls=(cert, key)) as running:
        yield running, cert


def test_https_connects_to_the_vetted_address_and_checks_the_host_name(
    tls_site: tuple[Site, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    site, cert = tls_site
    port = int(site.base.rsplit(":", 1)[1])
    connected = route_public_names(monkeypatch, port)
    real_context = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda: real_context(cafile=str(cert)))

    response = fetch(f"https://news.example:{port}/article", allow_private=False)
    assert response.status == 200 and b"Harwick" in response.body
    assert connected == [(PUBLIC_IP, port)]
    # the same address under a name the certificate does not cover: refused
    with pytest.raises(FetchError, match="TLS failed"):
        fetch(f"https://other.example:{port}/article", allow_private=False)
