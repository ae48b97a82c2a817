"""Tests for corpus.feedparse with feeds produced (and served) by NewsSite."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from corpus.feedparse import (
    FULL_CONTENT_MIN_CHARS,
    FeedEntry,
    FeedParseError,
    ParsedFeed,
    html_to_text,
    parse_feed,
)
from corpus.fetch import FetchError, UrlPolicy, fetch_url
from tests.servers.news_site import NewsSite, render_atom, render_rss

FEED_URL = "http://127.0.0.1:8000/feed.xml"
CEST = timezone(timedelta(hours=2))

PARAGRAPHS = [
    "The city council voted on Tuesday to expand the tram network by twelve kilometres, "
    "ending a debate that has run for almost a decade.",
    "Supporters said the new lines would cut commuting times in the eastern districts; "
    "opponents warned that the budget of 400 million euros was unrealistic.",
    "Construction is expected to start next spring, the mayor's office said, with the first "
    "section opening in 2027 if the regional government approves its share of the funding.",
]
CONTENT_HTML = "".join(f"<p>{p}</p>" for p in PARAGRAPHS) + "<script>track()</script>"
CONTENT_TEXT = "\n\n".join(PARAGRAPHS)


def _item(n: int = 1, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "guid": f"urn:test:{n}",
        "title": f"Council approves tram expansion {n}",
        "link": f"http://127.0.0.1:8000/articles/{n}",
        "published": datetime(2024, 3, 10, 9, 30, tzinfo=CEST),
        "summary": "<p>The council <b>approved</b> the plan &amp; its budget.</p>",
        "content": CONTENT_HTML,
        "author": "Jane Doe",
    }
    item.update(overrides)
    return item


def _render(kind: str, items: list[dict[str, Any]], full_content: bool) -> bytes:
    render = render_rss if kind == "rss" else render_atom
    return render(
        items, title="Test News", link="http://127.0.0.1:8000/", full_content=full_content
    )


@pytest.fixture
def site() -> Iterator[NewsSite]:
    with NewsSite() as s:
        yield s


# --------------------------------------------------------------------------
# End to end: NewsSite -> fetch_url -> parse_feed
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rss", "atom"])
async def test_served_feed_round_trip(site: NewsSite, kind: str) -> None:
    site.set_feed("/feed.xml", [_item(1), _item(2)], kind=kind, full_content=True)  # type: ignore[arg-type]
    result = await fetch_url(
        site.url("/feed.xml"), UrlPolicy(allowed_hosts=frozenset({site.netloc}))
    )

    feed = parse_feed(result.body, result.final_url, charset=result.charset)

    assert isinstance(feed, ParsedFeed)
    assert feed.title == "Test News"
    assert feed.link == site.url("/")
    assert [e.guid for e in feed.entries] == ["urn:test:1", "urn:test:2"]
    assert all(e.content_text == CONTENT_TEXT for e in feed.entries)


async def test_served_malformed_document_is_not_a_feed(site: NewsSite) -> None:
    site.set_malformed("/feed.xml")
    result = await fetch_url(
        site.url("/feed.xml"), UrlPolicy(allowed_hosts=frozenset({site.netloc}))
    )
    with pytest.raises(FeedParseError):
        parse_feed(result.body, result.final_url)


# --------------------------------------------------------------------------
# Entry fields
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_summary_only_feed(kind: str) -> None:
    feed = parse_feed(_render(kind, [_item()], full_content=False), FEED_URL)

    (entry,) = feed.entries
    assert isinstance(entry, FeedEntry)
    assert entry.guid == "urn:test:1"
    assert entry.link == "http://127.0.0.1:8000/articles/1"
    assert entry.title == "Council approves tram expansion 1"
    assert entry.authors == ("Jane Doe",)
    assert entry.summary_text == "The council approved the plan & its budget."
    assert entry.content_text is None


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_full_content_feed(kind: str) -> None:
    feed = parse_feed(_render(kind, [_item()], full_content=True), FEED_URL)

    (entry,) = feed.entries
    assert entry.content_text == CONTENT_TEXT  # paragraphs as blank lines, no script
    assert entry.summary_text == "The council approved the plan & its budget."


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_short_content_is_a_teaser_not_full_content(kind: str) -> None:
    teaser = "<p>Short teaser.</p>"
    assert len(teaser) < FULL_CONTENT_MIN_CHARS
    feed = parse_feed(_render(kind, [_item(content=teaser)], full_content=True), FEED_URL)
    assert feed.entries[0].content_text is None


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_content_without_summary_gets_a_short_summary(kind: str) -> None:
    feed = parse_feed(_render(kind, [_item(summary=None)], full_content=True), FEED_URL)

    entry = feed.entries[0]
    assert entry.content_text == CONTENT_TEXT
    assert entry.summary_text.startswith(PARAGRAPHS[0][:50])
    assert len(entry.summary_text) <= 401
    assert entry.summary_text.endswith("…")


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_dates_are_converted_to_utc(kind: str) -> None:
    feed = parse_feed(_render(kind, [_item()], full_content=False), FEED_URL)
    published = feed.entries[0].published_at
    assert published == datetime(2024, 3, 10, 7, 30, tzinfo=UTC)
    assert published is not None and published.utcoffset() == timedelta(0)


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_missing_date_is_none(kind: str) -> None:
    feed = parse_feed(_render(kind, [_item(published=None)], full_content=False), FEED_URL)
    assert feed.entries[0].published_at is None


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_entry_without_guid_falls_back_to_link(kind: str) -> None:
    feed = parse_feed(_render(kind, [_item(guid=None)], full_content=False), FEED_URL)
    assert feed.entries[0].guid == "http://127.0.0.1:8000/articles/1"


@pytest.mark.parametrize("kind", ["rss", "atom"])
def test_entry_without_guid_or_link_gets_a_stable_guid(kind: str) -> None:
    items = [_item(1, guid=None, link=None), _item(2, guid=None, link=None)]
    first = parse_feed(_render(kind, items, full_content=False), FEED_URL)
    # Same entries in another order and with another summary: same guids.
    reordered = [dict(items[1], summary="changed"), items[0]]
    second = parse_feed(_render(kind, reordered, full_content=False), FEED_URL)

    guids = [e.guid for e in first.entries]
    assert guids[0] != guids[1]
    assert all(g.startswith("sha256:") for g in guids)
    assert [e.guid for e in second.entries] == guids[::-1]
    assert first.entries[0].link is None


def test_relative_links_are_resolved_against_the_feed_url() -> None:
    body = render_atom(
        [_item(link="/articles/rel")], title="T", link="http://127.0.0.1:8000/", full_content=False
    )
    feed = parse_feed(body, "http://127.0.0.1:8000/feeds/all.atom")
    assert feed.entries[0].link == "http://127.0.0.1:8000/articles/rel"


def test_http_charset_overrides_missing_declaration() -> None:
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Café</title>'
        "<item><title>Zürich</title><guid>g</guid></item></channel></rss>"
    ).encode("iso-8859-1")
    feed = parse_feed(body, FEED_URL, charset="iso-8859-1")
    assert feed.title == "Café"
    assert feed.entries[0].title == "Zürich"


def test_multiple_and_duplicate_authors() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>f</id>'
        b"<updated>2024-01-01T00:00:00Z</updated><entry><id>e</id><title>x</title>"
        b"<updated>2024-01-01T00:00:00Z</updated>"
        b"<author><name>Ann  Lee</name></author><author><name>Bo Chen</name></author>"
        b"<author><name>Ann Lee</name></author></entry></feed>"
    )
    assert parse_feed(body, FEED_URL).entries[0].authors == ("Ann Lee", "Bo Chen")


# --------------------------------------------------------------------------
# Errors and tolerance
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x17<<rss version=!!>> <item <title>broken & {not: a feed}\xff\xfe",
        b"\x00\x17\xff\xfeGARBAGE <<< {not: a feed} >>> &&& </>\x00",
        NewsSite.article_html("A page", ["Not a feed."]).encode(),
        b'{"items": []}',
        b"",
        b"/etc/passwd",  # must never be opened as a file name
        b"http://127.0.0.1:1/feed.xml",  # ...nor fetched as a URL
    ],
)
def test_non_feed_documents_raise(body: bytes) -> None:
    with pytest.raises(FeedParseError) as info:
        parse_feed(body, FEED_URL)
    assert not isinstance(info.value, FetchError)
    assert "feed" in str(info.value)


def test_minor_problems_are_tolerated_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    # A bare "&" makes the XML ill-formed; feedparser's loose parser copes.
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        b"<item><title>Fish & Chips</title><guid>g1</guid></item></channel></rss>"
    )
    with caplog.at_level(logging.WARNING, logger="corpus.feedparse"):
        feed = parse_feed(body, FEED_URL)
    assert [e.title for e in feed.entries] == ["Fish & Chips"]
    assert any("minor problems" in r.message for r in caplog.records)


def test_empty_but_valid_feed_is_fine() -> None:
    feed = parse_feed(render_rss([], title="Quiet day", link="http://127.0.0.1:8000/"), FEED_URL)
    assert feed.title == "Quiet day"
    assert feed.entries == ()


# --------------------------------------------------------------------------
# HTML to text
# --------------------------------------------------------------------------


def test_html_to_text() -> None:
    html = (
        "<style>p{color:red}</style><h2>Head&shy;line</h2>"
        "<p>First   <em>para</em>\ngraph &amp; more.</p>"
        "<p>Line one<br>Line two</p><ul><li>a</li><li>b</li></ul>"
        "<script>alert('x')</script><div>tail&nbsp;text</div>"
    )
    assert html_to_text(html) == (
        "Headline\n\nFirst para graph & more.\n\nLine one\nLine two\n\na\n\nb\n\ntail text"
    )


def test_html_to_text_plain_input() -> None:
    assert html_to_text("just text") == "just text"
    assert html_to_text("") == ""
