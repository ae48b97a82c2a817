"""Routing: new articles reach the chats that follow them.

Every new article, whatever brought it in (files, ``/ingest``, feeds, channels, the CLI,
another process), is saved with a ``route_queue`` row in the same transaction. Routing
takes rows off that queue: topic matches and feed subscriptions become rows in the
delivery outbox, written in the same transaction that deletes the queue row. So a crash
can delay a push, never lose it, and an article is never queued twice for a chat (the
outbox's ``UNIQUE (chat_id, article_id)`` holds even if two processes route at once).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from corpus.faults import crash_point
from corpus.feed_repo import FeedRepo
from corpus.store import Store
from corpus.subscription_repo import Subscription, SubscriptionRepo
from corpus.text import sentence_spans

log = logging.getLogger(__name__)

Push = tuple[int, int | None, tuple[int, int] | None]  # (chat id, subscription id, quote)


class Matcher(Protocol):
    """What routing needs of the topic matcher."""

    async def match_article(self, store: Store, article_id: int) -> list:
        """Topic matches of one stored article."""
        ...


async def route_pending(store: Store, matcher: Matcher | None, limit: int = 200) -> int:
    """Route up to ``limit`` waiting articles; returns how many pushes were queued."""
    repo = SubscriptionRepo(store)
    waiting = await repo.routes_waiting(limit)
    if not waiting:
        return 0
    feed_subs: dict[int, list[Subscription]] = {}
    for sub in await repo.active("feed"):
        feed_subs.setdefault(sub.feed_id or 0, []).append(sub)
    feeds = FeedRepo(store)
    queued = 0
    for article_id in waiting:
        try:
            pushes = await _pushes_for(store, matcher, feeds, feed_subs, article_id)
        except Exception:  # a bug must not hold up the articles behind this one
            log.exception("could not route article %d; it stays queued", article_id)
            continue
        queued += await repo.finish_route(article_id, pushes)
        crash_point("route.after_article")
    if queued:
        log.info("queued %d pushes for %d articles", queued, len(waiting))
    return queued


async def route_all(store: Store, matcher: Matcher | None) -> int:
    """Route every waiting article (the CLI, after an ingest or a poll)."""
    repo, total = SubscriptionRepo(store), 0
    waiting = await repo.routes_waiting(1)
    while waiting:
        total += await route_pending(store, matcher)
        left = await repo.routes_waiting(1)
        if left == waiting:  # the oldest could not be routed: leave it for the bot
            break
        waiting = left
    return total


async def _pushes_for(
    store: Store,
    matcher: Matcher | None,
    feeds: FeedRepo,
    feed_subs: dict[int, list[Subscription]],
    article_id: int,
) -> list[Push]:
    """The pushes one article earns: its topic matches, then its feed's followers."""
    pushes: list[Push] = []
    if matcher is not None:
        for match in await matcher.match_article(store, article_id):
            pushes.append((match.chat_id, match.subscription_id, match.quote))
    feed_id = await feeds.feed_of(article_id)
    if feed_id in feed_subs:
        article = await store.get_article(article_id)
        if article is not None:
            # Sentence splitting of a whole article is CPU work: off the event loop.
            spans = await asyncio.to_thread(sentence_spans, article.text)
            first = spans[0] if spans else None
            pushes.extend((sub.chat_id, sub.id, first) for sub in feed_subs[feed_id])
    return pushes
