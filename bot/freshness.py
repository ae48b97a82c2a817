"""New articles reach the chats that follow them: topic matches and feed subscriptions
become rows in the delivery outbox (the Telegram sender sends them later)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from corpus.feed_repo import FeedRepo
from corpus.store import Store
from corpus.subscription_repo import SubscriptionRepo
from corpus.text import sentence_spans

log = logging.getLogger(__name__)


class Matcher(Protocol):
    """What routing needs of the topic matcher."""

    async def match_article(self, store: Store, article_id: int) -> list:
        """Topic matches of one stored article."""
        ...


async def route_articles(store: Store, matcher: Matcher | None, article_ids: Iterable[int]) -> int:
    """Queue pushes of new articles to the chats that follow their topic or feed.

    Returns how many pushes were queued; an article already queued for a chat is not
    queued again.
    """
    subs = SubscriptionRepo(store)
    feeds = FeedRepo(store)
    feed_subs: dict[int, list] = {}
    for sub in await subs.active("feed"):
        feed_subs.setdefault(sub.feed_id or 0, []).append(sub)
    queued = 0
    for article_id in article_ids:
        if matcher is not None:
            for match in await matcher.match_article(store, article_id):
                queued += await subs.enqueue(
                    match.chat_id, article_id, match.subscription_id, match.quote
                )
        feed_id = await feeds.feed_of(article_id)
        if feed_id in feed_subs:
            article = await store.get_article(article_id)
            spans = sentence_spans(article.text) if article else []
            first = spans[0] if spans else None
            for sub in feed_subs[feed_id]:
                queued += await subs.enqueue(sub.chat_id, article_id, sub.id, first)
    if queued:
        log.info("queued %d pushes", queued)
    return queued


async def route_new_articles(services, article_ids: Iterable[int]) -> int:
    """Route new articles with the services' topic matcher (see :func:`route_articles`)."""
    matcher = await services.topic_matcher()
    return await route_articles(services.store, matcher, article_ids)
