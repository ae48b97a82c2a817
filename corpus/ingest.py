"""Ingest article drafts into the store: dedupe by URL and normalized text, replace
changed articles, and report what happened to each input."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace

from corpus.faults import crash_point
from corpus.models import ArticleDraft, IngestReport
from corpus.readers import ReadFailure, ReadResult
from corpus.store import ArticleLinker, Store
from corpus.text import content_hash, valid_unicode

log = logging.getLogger(__name__)

# Origins anyone on the internet controls: a feed or a channel speaks only for itself.
UNTRUSTED_ORIGINS = ("feed:", "channel:")
FOREIGN_URL = "its URL belongs to an article from another source"


async def ingest_one(
    store: Store,
    draft: ArticleDraft,
    report: IngestReport,
    *,
    link: ArticleLinker | None = None,
    route: bool = True,
) -> int | None:
    """Store one draft unless it is a duplicate; returns the article id it now has
    (None when it was refused: it is then in ``report.failed``).

    ``link`` writes the caller's rows about the article (the feed entry it came from, its
    channel) in the same transaction as a new or changed article; for a duplicate it runs
    in a transaction of its own with the id of the article already stored. A new article
    is queued for routing to its followers unless ``route`` is False.
    """
    draft = _valid(draft)
    digest = content_hash(draft.text)
    existing = await store.article_by_url(draft.url) if draft.url else None
    if existing is not None:
        if existing.content_hash == digest and existing.title == draft.title:
            return await _duplicate(store, draft, report, existing.id, link)
        same_text = await store.article_by_hash(digest)
        if same_text is not None and same_text.id != existing.id:
            return await _duplicate(store, draft, report, same_text.id, link)
        # A feed (or channel) may update its own articles, never another outlet's by
        # claiming its URL: that would put its words under their name.
        if (
            draft.origin.startswith(UNTRUSTED_ORIGINS)
            and await store.origin_of(existing.id) != draft.origin
        ):
            report.failed.append((draft.origin, f"{FOREIGN_URL} ({draft.url})"))
            return None
        await store.save_article(draft, replace_id=existing.id, digest=digest, link=link)
        report.updated.append(existing.id)
        return existing.id
    same_text = await store.article_by_hash(digest)
    if same_text is not None:
        return await _duplicate(store, draft, report, same_text.id, link)
    article_id = await store.save_article(draft, digest=digest, route=route, link=link)
    report.added.append(article_id)
    return article_id


def _valid(draft: ArticleDraft) -> ArticleDraft:
    """The draft with lone surrogates replaced (a JSON file or a Telegram post may hold
    them; SQLite and hashing refuse them)."""
    return replace(
        draft,
        title=valid_unicode(draft.title),
        text=valid_unicode(draft.text),
        source=valid_unicode(draft.source),
        url=valid_unicode(draft.url) if draft.url else draft.url,
        authors=tuple(valid_unicode(a) for a in draft.authors),
    )


async def _duplicate(
    store: Store,
    draft: ArticleDraft,
    report: IngestReport,
    article_id: int,
    link: ArticleLinker | None,
) -> int:
    report.duplicates.append(draft.origin)
    if link is not None:
        async with store.transaction() as db:
            await link(db, article_id)
    return article_id


async def ingest_results(
    store: Store,
    results: Iterable[ReadResult],
    on_item: Callable[[ReadResult], None] | None = None,
    *,
    route: bool = True,
) -> IngestReport:
    """Ingest what the readers produced; failures are recorded, the rest still lands.
    New articles are queued for routing to their followers unless ``route`` is False."""
    report = IngestReport()
    for item in results:
        if isinstance(item, ReadFailure):
            report.failed.append((item.origin, item.reason))
        else:
            try:
                await ingest_one(store, item, report, route=route)
                crash_point("ingest.after_article")
            except Exception as exc:  # one bad article never stops the batch
                log.exception("failed to store %s", item.origin)
                report.failed.append((item.origin, f"could not store it ({type(exc).__name__})"))
        if on_item:
            on_item(item)
    return report
