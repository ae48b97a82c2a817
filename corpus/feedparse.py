"""Turn RSS/Atom documents into plain, immutable entries.

feedparser does the heavy lifting (formats, dates, relative links, HTML
sanitizing); this module reduces its loose dictionaries to the few typed
fields the corpus needs, with all HTML turned into plain text.

A feed is whatever a remote server sends, so two things happen before
feedparser parses it (see "Hostile documents" below): XML entity declarations
are removed, since feedparser expands the ones it deems safe (a 60 KB feed
became a 100-million-character summary), and four of feedparser's regular
expressions that backtrack on crafted input are replaced by linear ones.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import io
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import feedparser
import feedparser.encodings
import feedparser.mixin
import feedparser.sanitizer

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


# Where HTMLParser (``_markupbase``) sees a comment end and a marked-section end.
_COMMENT_CLOSE = re.compile(r"--\s*>")
_SECTION_CLOSE = re.compile(r"]\s*>")
# A marked section whose keyword HTMLParser does not know: it raises AssertionError
# on "<![x" or "<![1" instead of reading on.
_UNKNOWN_SECTION = re.compile(
    r"<!\[(?!(?:temp|cdata|ignore|include|rcdata|if|else|endif)(?![-_.a-z0-9]))",
    re.IGNORECASE | re.ASCII,
)


def _escape_after_last(html: str, close: re.Pattern[str], opener: str) -> str:
    """``html`` with ``opener`` escaped wherever no ``close`` follows it."""
    done = max((m.end() for m in close.finditer(html)), default=0)
    return html[:done] + html[done:].replace(opener, "&lt;" + opener[1:])


def _defuse_unclosed(html: str) -> str:
    """``html`` with the openers nothing closes escaped, so they read as the text they are.

    Python's HTMLParser (before 3.11.13: CPython gh-135462) tries such an opener
    against all the rest of the input, then moves on by a character or a tag: a
    "<" with no ">" after it, "<!--" with no "-->", or "<![" with no "]>",
    repeated, is quadratic (40,000 characters of "<a " took 15 s).  It shows
    them as text in the end anyway; escaped, they are text from the start.
    """
    cut = html.rfind(">") + 1
    head, tail = html[:cut], html[cut:].replace("<", "&lt;")
    head = _escape_after_last(head, _COMMENT_CLOSE, "<!--")
    head = _escape_after_last(head, _SECTION_CLOSE, "<![")
    return _UNKNOWN_SECTION.sub("&lt;![", head) + tail


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment; paragraphs separated by blank lines."""
    extractor = _TextExtractor()
    extractor.feed(_defuse_unclosed(html))
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
# Hostile documents
# --------------------------------------------------------------------------

# An entity declaration, quoted values and all, up to its closing ">".  Unquoted
# parts stop at "<" and quoted ones at their quote, so no scan can run past the
# next declaration: linear even on a megabyte of "<!ENTITY".
_ENTITY_DECLARATION = re.compile(rb"""<!ENTITY(?:[^<>"']++|"[^"]*+"|'[^']*+')*+>""")

# feedparser's own patterns, with the same purpose and linear time.  The
# originals are, in order: cubic on a first line holding many 'encoding="'
# (20 KB took 22 s), and quadratic on a run of blank lines before the root
# element (``^\s*`` is tried again at every line of it; 20,000 lines took 2.6 s,
# four times over).  Now the encoding is read from the XML declaration itself,
# and an ENTITY or DOCTYPE declaration is looked for after the blanks of its own
# line only.  A DOCTYPE with an internal subset holding markup is no longer cut
# at the first ">" inside it (that left "]>" in the document and forced the
# loose parser).
_SAFE_FEEDPARSER_PATTERNS = {
    (feedparser.encodings, "RE_XML_PI_ENCODING"): re.compile(
        rb"""^<\?[^\n>]{0,200}?encoding=['"]([^'"\n>]{0,64})['"][^\n>]{0,200}?\?>"""
    ),
    (feedparser.sanitizer, "RE_ENTITY_PATTERN"): re.compile(
        rb"^[^\S\n]*<!ENTITY([^>]*?)>", re.MULTILINE
    ),
    (feedparser.sanitizer, "RE_DOCTYPE_PATTERN"): re.compile(
        rb"^[^\S\n]*<!DOCTYPE([^<>]*+)>", re.MULTILINE
    ),
}


# The e-mail pattern feedparser searches every author name with (mixin.py,
# ``_sync_author_detail``), as written there.  Tried from every character of a
# long run of name characters it is quadratic: a 20 KB <author> took 3 s, a
# 50 KB one more than 10 s (upstream: kurtmckee/feedparser#562, unfixed).
_FEEDPARSER_EMAIL = (
    r"""(([a-zA-Z0-9\_\-\.\+]+)@((\[[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.)|"""
    r"""(([a-zA-Z0-9\-]+\.)+))([a-zA-Z]{2,4}|[0-9]{1,3})(\]?))(\?subject=\S+)?"""
)
# The same pattern, started only where a run of those characters begins.  The
# leftmost match is the same (a match inside a run implies one from its start),
# and the run is scanned once.
_LINEAR_EMAIL = re.compile(r"(?<![a-zA-Z0-9_\-.+])" + _FEEDPARSER_EMAIL)


class _ReWithLinearEmail:
    """The ``re`` module as feedparser.mixin sees it: its e-mail search is linear."""

    def search(self, pattern: str, string: str, flags: int = 0) -> re.Match[str] | None:
        if pattern == _FEEDPARSER_EMAIL and not flags:
            return _LINEAR_EMAIL.search(string)
        return re.search(pattern, string, flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)


@functools.cache
def _harden_feedparser() -> None:
    """Swap in the linear patterns (once; feedparser reads them at call time).

    A later feedparser that renames or fixes them is left alone: a missing
    constant is skipped, and a changed e-mail pattern is searched as written.
    """
    for (module, name), pattern in _SAFE_FEEDPARSER_PATTERNS.items():
        if hasattr(module, name):
            setattr(module, name, pattern)
    if feedparser.mixin.re is re:
        feedparser.mixin.re = _ReWithLinearEmail()


def _without_entity_declarations(body: bytes, content_type: str) -> tuple[bytes, str]:
    """The document (and its content type) with XML entity declarations removed.

    feedparser expands declared entities whose value holds no "&": one 50 KB
    entity named 2,000 times is 100 MB of text (the "quadratic blowup"; expat
    stops nested "billion laughs", feedparser's loose parser does not stop this).
    Without their declarations, references stay as literal text.

    The check runs on the document as feedparser will decode it (any charset the
    server names, UTF-16, UTF-7...), so an encoding cannot hide a declaration.
    A document without declarations is returned untouched; one with them comes
    back as that UTF-8 text.  Raises ``FeedParseError`` for a declaration that
    does not close: no real feed has one.
    """
    as_parsed = feedparser.encodings.convert_to_utf8({"content-type": content_type}, body, {})
    if b"<!ENTITY" not in as_parsed:
        return body, content_type
    stripped = _ENTITY_DECLARATION.sub(b"", as_parsed)
    if b"<!ENTITY" in stripped:
        raise FeedParseError("That feed declares XML entities in a way I can't read safely.")
    log.info("removed XML entity declarations from a feed")
    return stripped, "application/xml; charset=utf-8"


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
    _harden_feedparser()
    content_type = "application/xml" + (f"; charset={charset}" if charset else "")
    try:
        body, content_type = _without_entity_declarations(body, content_type)
        # Wrap the bytes in a stream: given bytes or str, feedparser treats
        # them as a file name or URL when they look like one, which would
        # let a response body make us read local files or fetch URLs.
        parsed = feedparser.parse(
            io.BytesIO(body),
            response_headers={"content-location": url, "content-type": content_type},
        )
    except FeedParseError:
        raise
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
