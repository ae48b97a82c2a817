"""Turn RSS/Atom documents into plain, immutable entries.

feedparser does the heavy lifting (formats, dates, relative links, HTML
sanitizing); this module reduces its loose dictionaries to the few typed
fields the corpus needs, with all HTML turned into plain text.
"""

from __future__ import annotations

import calendar
import hashlib
import io
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import feedparser

__all__ = [
    "FULL_CONTENT_MIN_CHARS",
    "FeedEntry",
    "FeedParseError",
    "ParsedFeed",
    "html_to_text",
    "parse_feed",
]

log = logging.getLogger(__name__)

# Feed content shorter than this is a teaser, not the article: the caller
# should fetch the page instead.
FULL_CONTENT_MIN_CHARS = 400
# Length of the summary derived from full content when a feed has no
# separate summary.
_EXCERPT_CHARS = 400


class FeedParseError(Exception):
    """The document is not a usable feed; ``str(exc)`` is user-facing."""

    def __init__(
        self, message: str = "That address doesn't point to a news feed (RSS or Atom)."
    ) -> None:
        super().__init__(message)


@dataclass(frozen=True)
class FeedEntry:
    guid: str  # entry id, else link, else a hash of title + published
    link: str | None
    title: str
    published_at: datetime | None  # timezone-aware, UTC
    authors: tuple[str, ...]
    summary_text: str
    content_text: str | None  # full article text when the feed carries it


@dataclass(frozen=True)
class ParsedFeed:
    title: str
    link: str | None
    entries: tuple[FeedEntry, ...]


# --------------------------------------------------------------------------
# HTML -> text
# --------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "caption", "dd", "div", "dl", "dt"),
        *("figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6"),
        *("header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table"),
        *("tbody", "thead", "tfoot", "tr", "ul"),
    }
)
# Line breaks in HTML source are plain white space; soft hyphens and
# zero-width characters are invisible and only break word matching.
_INVISIBLE = str.maketrans({"\r": " ", "\n": " ", "\u00ad": None, "\u200b": None, "\ufeff": None})
# Elements whose text is never reader-visible prose.
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "head", "svg", "math"})


class _TextExtractor(HTMLParser):
    """Collect text, turning block elements into paragraphs and <br> into newlines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities decoded for us
        self._paragraphs: list[str] = []
        self._pending: list[str] = []
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth += 1
        elif tag == "br":
            self._pending.append("\n")
        elif tag in _BLOCK_TAGS:
            self._end_paragraph()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK_TAGS:
            self._end_paragraph()

    def handle_data(self, data: str) -> None:
        if not self._skip_depth:
            # Source line breaks are just spaces in HTML; only <br> makes "\n".
            self._pending.append(data.translate(_INVISIBLE))

    def _end_paragraph(self) -> None:
        # HTML whitespace is insignificant: collapse it, but keep <br> lines.
        lines = (" ".join(line.split()) for line in "".join(self._pending).split("\n"))
        paragraph = "\n".join(line for line in lines if line)
        if paragraph:
            self._paragraphs.append(paragraph)
        self._pending = []

    def text(self) -> str:
        self.close()
        self._end_paragraph()
        return "\n\n".join(self._paragraphs)


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment; paragraphs separated by blank lines."""
    extractor = _TextExtractor()
    extractor.feed(html)
    return extractor.text()


def _plain_to_text(text: str) -> str:
    """Normalize plain text the same way: blank-line paragraphs, tidy spaces."""
    paragraphs = (" ".join(block.split()) for block in text.replace("\r", "").split("\n\n"))
    return "\n\n".join(p for p in paragraphs if p)


def _detail_text(detail: Mapping[str, Any] | None, fallback: str | None = None) -> str:
    """Text of a feedparser ``*_detail`` / content dict, honouring its type."""
    if detail is None:
        return _plain_to_text(fallback or "")
    value = detail.get("value") or ""
    if "html" in (detail.get("type") or "text/html"):
        return html_to_text(value)
    return _plain_to_text(value)


def _excerpt(text: str, limit: int = _EXCERPT_CHARS) -> str:
    """First ``limit`` characters of ``text``, cut at a word boundary."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(None, 1)[0]
    return cut.rstrip(" ,;:") + "…"


# --------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------


def _to_utc(parsed: time.struct_time | None) -> datetime | None:
    # feedparser already normalized the date to UTC as a struct_time.
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _published(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        when = _to_utc(entry.get(key))
        if when is not None:
            return when
    return None


def _authors(entry: Mapping[str, Any]) -> tuple[str, ...]:
    # feedparser may fill ``authors``, ``author`` or both.
    names = [a.get("name") for a in entry.get("authors") or []] + [entry.get("author")]
    unique: dict[str, None] = {}
    for name in names:
        cleaned = " ".join((name or "").split())
        if cleaned:
            unique.setdefault(cleaned)
    return tuple(unique)


def _stable_guid(
    entry: Mapping[str, Any], link: str | None, title: str, published: datetime | None
) -> str:
    """Entry id, else link, else a hash that is the same on every fetch."""
    guid = (entry.get("id") or "").strip()
    if guid:
        return guid
    if link:
        return link
    key = f"{title}\n{published.isoformat() if published else ''}"
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _best_content(entry: Mapping[str, Any]) -> str | None:
    """Longest content block as text, if long enough to be the full article."""
    texts = [_detail_text(block) for block in entry.get("content") or []]
    best = max(texts, key=len, default="")
    return best if len(best) >= FULL_CONTENT_MIN_CHARS else None


def _summary(entry: Mapping[str, Any], content_text: str | None) -> str:
    raw = entry.get("summary") or ""
    summary = _detail_text(entry.get("summary_detail"), raw) if raw else ""
    # feedparser copies the content into ``summary`` when a feed has no
    # separate summary; a summary should stay short.
    copied = bool(raw) and any(block.get("value") == raw for block in entry.get("content") or [])
    if content_text and (not summary or copied):
        return _excerpt(content_text)
    return summary


def _has_substance(entry: Mapping[str, Any]) -> bool:
    return any(entry.get(key) for key in ("id", "link", "title", "summary", "content"))


def _entry(entry: Mapping[str, Any]) -> FeedEntry:
    title = _detail_text(entry.get("title_detail"), entry.get("title"))
    link = (entry.get("link") or "").strip() or None
    published = _published(entry)
    content_text = _best_content(entry)
    return FeedEntry(
        guid=_stable_guid(entry, link, title, published),
        link=link,
        title=title,
        published_at=published,
        authors=_authors(entry),
        summary_text=_summary(entry, content_text),
        content_text=content_text,
    )


# --------------------------------------------------------------------------
# Feed
# --------------------------------------------------------------------------


def parse_feed(body: bytes, url: str, *, charset: str | None = None) -> ParsedFeed:
    """Parse an RSS/Atom document fetched from ``url``.

    ``url`` resolves relative links; ``charset`` (from the HTTP header, if
    any) overrides the document's own declaration, as HTTP says it should.
    Minor problems (feedparser's "bozo" flag) are logged and tolerated;
    ``FeedParseError`` is raised only when the document is not a feed.
    """
    content_type = "application/xml" + (f"; charset={charset}" if charset else "")
    try:
        # Wrap the bytes in a stream: given bytes or str, feedparser treats
        # them as a file name or URL when they look like one, which would
        # let a response body make us read local files or fetch URLs.
        parsed = feedparser.parse(
            io.BytesIO(body),
            response_headers={"content-location": url, "content-type": content_type},
        )
    except Exception as exc:  # untrusted input; feedparser is large
        log.warning("feedparser crashed on %s: %r", url, exc)
        raise FeedParseError() from exc

    feed = parsed.get("feed", {})
    feed_title = _detail_text(feed.get("title_detail"), feed.get("title"))
    # The loose parser can turn garbage into empty entries; drop those.
    entries = [e for e in parsed.get("entries", []) if _has_substance(e)]
    # "version" is empty when feedparser recognized no feed format at all
    # (HTML pages, JSON, garbage); bozo without entries or title means the
    # XML broke before anything useful was read.
    if not entries and (not parsed.get("version") or (parsed.get("bozo") and not feed_title)):
        log.info("not a feed: %s (%r)", url, parsed.get("bozo_exception"))
        raise FeedParseError()
    if parsed.get("bozo"):
        log.warning("feed %s has minor problems: %s", url, parsed.get("bozo_exception"))

    return ParsedFeed(
        title=feed_title,
        link=(feed.get("link") or "").strip() or None,
        entries=tuple(_entry(e) for e in entries),
    )
