"""Ingest article drafts into the store: dedupe by URL and normalized text, replace
changed articles, and report what happened to each input."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from corpus.models import ArticleDraft, IngestReport
from corpus.readers import ReadFailure, ReadResult
from corpus.store import Store
from corpus.text import content_hash

log = logging.getLogger(__name__)


async def ingest_one(store: Store, draft: ArticleDraft, report: IngestReport) -> int | None:
    """Store one draft unless it is a duplicate; returns the article id it now has."""
    digest = content_hash(draft.text)
    existing = await store.article_by_url(draft.url) if draft.url else None
    if existing is not None:
        if existing.content_hash == digest and existing.title == draft.title:
            report.duplicates.append(draft.origin)
            return existing.id
        same_text = await store.article_by_hash(digest)
        if same_text is not None and same_text.id != existing.id:
            report.duplicates.append(draft.origin)
            return same_text.id
        await store.save_article(draft, replace_id=existing.id, digest=digest)
        report.updated.append(existing.id)
        return existing.id
    same_text = await store.article_by_hash(digest)
    if same_text is not None:
        report.duplicates.append(draft.origin)
        return same_text.id
    article_id = await store.save_article(draft, digest=digest)
    report.added.append(article_id)
    return article_id


async def ingest_results(
    store: Store,
    results: Iterable[ReadResult],
    on_item: Callable[[ReadResult], None] | None = None,
) -> IngestReport:
    """Ingest what the readers produced; failures are recorded, the rest still lands."""
    report = IngestReport()
    for item in results:
        if isinstance(item, ReadFailure):
            report.failed.append((item.origin, item.reason))
        else:
            try:
                await ingest_one(store, item, report)
            except Exception as exc:  # one bad article never stops the batch
                log.exception("failed to store %s", item.origin)
                report.failed.append((item.origin, f"could not store it ({type(exc).__name__})"))
        if on_item:
            on_item(item)
    return report
