"""Poll RSS/Atom feeds: fetch (conditionally), parse, turn new entries into articles.

One poll of one feed:

1. a conditional GET with the feed's stored ETag / Last-Modified (``fetch_url``,
   so the URL policy applies to the feed and to every redirect hop);
2. 304 -> the feed is recorded as fetched, nothing else happens;
3. otherwise the entries whose guid the feed has not produced before, newest
   first, at most ``max_entries``, each become an article: from the feed's full
   content when it carries it, else from the linked page (fetched under the same
   policy and read with trafilatura), else from the entry's summary when that is
   long enough to stand as an article;
4. every entry that landed, or failed for good (refused URL, HTTP 4xx, no text),
   is marked seen; entries that failed for a passing reason (timeout, 5xx,
   unreachable) are not, so the next poll tries them again.  While such work
   remains, the feed's validators are not stored, so the next poll gets the whole
   feed again instead of a 304.

Network and parse problems never raise: they end up in the ``PollResult`` and, for
the feed itself, in the feed's row (``record_failure`` backs off exponentially).
One entry failing never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

import httpx

from corpus.faults import crash_point
from corpus.feed_repo import Feed, FeedRepo
from corpus.feedparse import FeedEntry, FeedParseError, ParsedFeed, parse_feed
from corpus.fetch import (
    FetchError,
    FetchResult,
    HttpStatusError,
    ResponseTooLarge,
    TooManyRedirects,
    UrlNotAllowed,
    UrlPolicy,
    check_url_allowed,
    fetch_url,
)
from corpus.ingest import ingest_one
from corpus.models import ArticleDraft, IngestReport
from corpus.readers.base import ReadFailure, clean_body, validate
from corpus.readers.html import parse_html
from corpus.store import Store

__all__ = [
    "MIN_SUMMARY_CHARS",
    "PollResult",
    "poll_due",
    "poll_feed",
    "poll_feeds",
    "validate_feed_url",
]

log = logging.getLogger(__name__)

# A summary at least this long (in characters of text) stands in for an article
# whose page could not be read.
MIN_SUMMARY_CHARS = 200
# Page types trafilatura can read ("" = the server did not say).
_HTML_TYPES = frozenset({"", "text/html", "application/xhtml+xml", "text/plain"})
# Client errors that may well go away (timeout on the server side, rate limit).
_TRANSIENT_4XX = frozenset({408, 425, 429})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class PollResult:
    """What one poll of one feed did."""

    feed_id: int
    url: str
    new_article_ids: list[int] = field(default_factory=list)
    updated_article_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    failed_entries: list[tuple[str, str]] = field(default_factory=list)  # (guid/link, reason)
    not_modified: bool = False
    error: str | None = None

    @property
    def changed_ids(self) -> list[int]:
        """Articles whose text is new or changed (the search index needs them)."""
        return self.new_article_ids + self.updated_article_ids


@dataclass(frozen=True)
class _EntryFailure:
    """Why an entry did not become an article; ``permanent`` ones are not retried."""

    reason: str
    permanent: bool
    summary_may_stand_in: bool = True  # False for links we may not fetch (nor store)


@dataclass(frozen=True)
class _FeedContext:
    """What every entry of one feed document shares."""

    feed_id: int
    origin: str  # ArticleDraft.origin of the feed's articles
    source: str  # outlet name when the entry/page gives none
    today: date


def validate_feed_url(url: str, policy: UrlPolicy) -> None:
    """Raise ``UrlNotAllowed`` for a feed URL refused without any DNS lookup (/addfeed)."""
    check_url_allowed(url, policy)


# --------------------------------------------------------------------------
# Polling
# --------------------------------------------------------------------------


async def poll_due(
    store: Store,
    policy: UrlPolicy,
    now: datetime | None = None,
    *,
    client: httpx.AsyncClient | None = None,
) -> list[PollResult]:
    """Poll every feed whose next run has come, one after another."""
    feeds = await FeedRepo(store).due(now)
    return await poll_feeds(store, feeds, policy, client=client)


async def poll_feeds(
    store: Store,
    feeds: Sequence[Feed],
    policy: UrlPolicy,
    *,
    max_entries: int = 50,
    client: httpx.AsyncClient | None = None,
) -> list[PollResult]:
    """Poll these feeds one after another; a feed that breaks never stops the rest."""
    results = []
    for feed in feeds:
        try:
            result = await poll_feed(store, feed, policy, max_entries=max_entries, client=client)
        except Exception as exc:  # a bug or a broken database: log it, go on
            log.exception("polling feed %d (%s) failed", feed.id, feed.url)
            result = PollResult(feed.id, feed.url, error=f"internal error ({type(exc).__name__})")
        results.append(result)
    return results


async def poll_feed(
    store: Store,
    feed: Feed,
    policy: UrlPolicy,
    *,
    max_entries: int = 50,
    client: httpx.AsyncClient | None = None,
) -> PollResult:
    """Poll one feed: fetch it conditionally and ingest its new entries (never raises
    for network or parse problems; see the module docstring)."""
    repo = FeedRepo(store)
    result = PollResult(feed.id, feed.url)
    try:
        fetched = await fetch_url(
            feed.url, policy, etag=feed.etag, last_modified=feed.last_modified, client=client
        )
        if fetched.not_modified:
            result.not_modified = True
            await _record_success(repo, feed, None, fetched, keep_validators=True)
            return result
        # feedparser and trafilatura are CPU work: keep the (bot's) event loop free.
        parsed = await asyncio.to_thread(
            parse_feed, fetched.body, fetched.final_url, charset=fetched.charset
        )
    except (FetchError, FeedParseError) as exc:
        result.error = str(exc)
        log.info("feed %d (%s) failed: %s", feed.id, feed.url, exc)
        await repo.record_failure(feed, str(exc))
        return result

    ctx = _FeedContext(
        feed_id=feed.id,
        origin=f"feed:{feed.url}",
        source=parsed.title or feed.title or _host(fetched.final_url),
        today=datetime.now(UTC).date(),
    )
    pending, left_over = await _new_entries(repo, feed.id, parsed, max_entries)
    report = IngestReport()
    retry = False
    for entry in pending:
        retry |= not await _process_entry(store, repo, entry, ctx, policy, client, report, result)
    result.new_article_ids = list(report.added)
    result.updated_article_ids = list(report.updated)
    result.duplicates = len(report.duplicates)
    await _record_success(repo, feed, parsed, fetched, keep_validators=not (retry or left_over))
    log.info(
        "feed %d: %d new, %d updated, %d duplicates, %d failed",
        feed.id,
        len(result.new_article_ids),
        len(result.updated_article_ids),
        result.duplicates,
        len(result.failed_entries),
    )
    return result


async def _record_success(
    repo: FeedRepo,
    feed: Feed,
    parsed: ParsedFeed | None,
    fetched: FetchResult,
    *,
    keep_validators: bool,
) -> None:
    """Record the fetch; without ``keep_validators`` the next poll is unconditional."""
    await repo.record_success(
        feed,
        title=(parsed.title or None) if parsed else None,
        etag=fetched.etag if keep_validators else None,
        last_modified=fetched.last_modified if keep_validators else None,
    )


async def _new_entries(
    repo: FeedRepo, feed_id: int, parsed: ParsedFeed, max_entries: int
) -> tuple[list[FeedEntry], bool]:
    """Unseen entries, newest first, at most ``max_entries``; and whether some were left."""
    unique: dict[str, FeedEntry] = {}
    for entry in parsed.entries:
        unique.setdefault(entry.guid, entry)
    seen = await repo.seen_guids(feed_id, list(unique))
    fresh = [e for guid, e in unique.items() if guid not in seen]
    fresh.sort(key=lambda e: e.published_at or _EPOCH, reverse=True)  # stable: ties keep order
    return fresh[:max_entries], len(fresh) > max_entries


async def _process_entry(
    store: Store,
    repo: FeedRepo,
    entry: FeedEntry,
    ctx: _FeedContext,
    policy: UrlPolicy,
    client: httpx.AsyncClient | None,
    report: IngestReport,
    result: PollResult,
) -> bool:
    """Turn one entry into an article; False when it should be tried again next poll."""
    label = entry.link or entry.guid
    try:
        draft = await _entry_draft(entry, ctx, policy, client)
        if isinstance(draft, _EntryFailure):
            result.failed_entries.append((label, draft.reason))
            if draft.permanent:
                await repo.mark_seen(ctx.feed_id, entry.guid, None)
            return draft.permanent
        # The entry is marked seen in the same transaction as its article (or, for a
        # duplicate, right after): a crash in between can neither lose the article nor
        # leave the entry seen without it.
        failed = len(report.failed)
        link = repo.entry_linker(ctx.feed_id, entry.guid)
        article_id = await ingest_one(store, draft, report, link=link)
        if article_id is None:  # refused for good (another outlet's URL)
            result.failed_entries.extend((label, reason) for _, reason in report.failed[failed:])
            await repo.mark_seen(ctx.feed_id, entry.guid, None)
        crash_point("poll.after_entry")
        return True
    except Exception as exc:  # one entry never stops the others
        log.exception("feed %d: entry %s failed", ctx.feed_id, label)
        result.failed_entries.append((label, f"could not store it ({type(exc).__name__})"))
        return False


# --------------------------------------------------------------------------
# Entry -> draft
# --------------------------------------------------------------------------


async def _entry_draft(
    entry: FeedEntry, ctx: _FeedContext, policy: UrlPolicy, client: httpx.AsyncClient | None
) -> ArticleDraft | _EntryFailure:
    """The article an entry stands for: full content, else its page, else its summary."""
    if entry.content_text:
        return _checked(_draft_from_text(entry, ctx, entry.content_text))
    if not entry.link:
        return _summary_or(entry, ctx, _EntryFailure("no link and no full text", True))
    page = await _draft_from_page(entry, ctx, policy, client)
    if isinstance(page, ArticleDraft):
        return page
    return _summary_or(entry, ctx, page) if page.summary_may_stand_in else page


def _draft_from_text(entry: FeedEntry, ctx: _FeedContext, text: str) -> ArticleDraft:
    """An article from text the feed itself carries (full content or summary)."""
    return ArticleDraft(
        title=" ".join(entry.title.split()),
        text=clean_body(text),
        published_at=_entry_date(entry, ctx),
        source=ctx.source,
        url=entry.link,
        authors=entry.authors,
        origin=ctx.origin,
    )


def _checked(draft: ArticleDraft) -> ArticleDraft | _EntryFailure:
    """The draft if it has a title, date and text; else a permanent failure."""
    checked = validate(draft)
    if isinstance(checked, ReadFailure):
        return _EntryFailure(checked.reason, True)
    return checked


def _summary_or(
    entry: FeedEntry, ctx: _FeedContext, failure: _EntryFailure
) -> ArticleDraft | _EntryFailure:
    """The entry's summary as the article when it is long enough, else ``failure``."""
    text = clean_body(entry.summary_text)
    if len(text) < MIN_SUMMARY_CHARS:
        reason = f"{failure.reason} (and no summary long enough to use instead)"
        return _EntryFailure(reason, failure.permanent)
    return _checked(_draft_from_text(entry, ctx, text))


async def _draft_from_page(
    entry: FeedEntry, ctx: _FeedContext, policy: UrlPolicy, client: httpx.AsyncClient | None
) -> ArticleDraft | _EntryFailure:
    """Fetch the entry's page under ``policy`` and read it with trafilatura."""
    assert entry.link is not None
    try:
        page = await fetch_url(entry.link, policy, client=client)
    except FetchError as exc:
        return _fetch_failure(exc)
    if page.content_type not in _HTML_TYPES:
        return _EntryFailure(f"the link is not a web page ({page.content_type})", True)
    read = await asyncio.to_thread(
        parse_html,
        _decoded(page),
        ctx.origin,
        url=page.final_url,
        default_date=_entry_date(entry, ctx),
    )
    if isinstance(read, ReadFailure):
        return _EntryFailure(read.reason, True)
    return _with_entry_fallbacks(read, entry, ctx)


def _fetch_failure(exc: FetchError) -> _EntryFailure:
    """Classify a page fetch error: refused and client errors are final, the rest passing."""
    if isinstance(exc, UrlNotAllowed):
        return _EntryFailure(f"refused: {exc}", True, summary_may_stand_in=False)
    if isinstance(exc, HttpStatusError):
        permanent = 400 <= exc.status < 500 and exc.status not in _TRANSIENT_4XX
        return _EntryFailure(str(exc), permanent)
    return _EntryFailure(str(exc), isinstance(exc, ResponseTooLarge | TooManyRedirects))


def _with_entry_fallbacks(draft: ArticleDraft, entry: FeedEntry, ctx: _FeedContext) -> ArticleDraft:
    """Fill what the page left empty (outlet, authors) from the feed."""
    return replace(draft, source=draft.source or ctx.source, authors=draft.authors or entry.authors)


def _decoded(page: FetchResult) -> str | bytes:
    """The page as text when the server named a charset we know, else the raw bytes."""
    if page.charset:
        try:
            return page.body.decode(page.charset)
        except (LookupError, UnicodeDecodeError):
            pass
    return page.body


def _entry_date(entry: FeedEntry, ctx: _FeedContext) -> date:
    """The entry's publication day (UTC), or today when the feed gives none."""
    return entry.published_at.date() if entry.published_at else ctx.today


def _host(url: str) -> str:
    """The host of ``url`` ("" when it has none)."""
    try:
        return httpx.URL(url).host
    except (httpx.InvalidURL, TypeError, ValueError):
        return ""
