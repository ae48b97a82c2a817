"""The ingest -> route -> deliver pipeline on a real SQLite file, without Telegram:
what is written together, what a reader may see, who may overwrite what, and how a
digest survives failures."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest
from telegram.error import BadRequest, NetworkError

from bot.routing import route_pending
from bot.telegram.delivery import DeliverySender, digest_parts
from corpus.feed_repo import FeedRepo, utcnow
from corpus.ingest import FOREIGN_URL, ingest_one
from corpus.models import ArticleDraft, IngestReport
from corpus.store import Store
from corpus.subscription_repo import SubscriptionRepo

CHAT = 4242


def draft(n: int, origin: str = "file", url: str | None = None, words: int = 60) -> ArticleDraft:
    text = " ".join(f"Sentence {n} word {i} of the fictional report." for i in range(words // 6))
    return ArticleDraft(
        title=f"Report {n}",
        text=text,
        published_at=date(2023, 9, 1),
        source="Test Wire",
        url=url or f"https://news.example/{n}",
        origin=origin,
    )


async def _count(store: Store, sql: str) -> int:
    return (await store.fetchone(sql))[0]


async def test_reads_never_see_a_write_transaction_half_done(store: Store) -> None:
    """Reads go through their own connection: uncommitted rows stay invisible (on the
    writer's connection a read saw them, and a rollback made it a lie)."""
    async with store.transaction() as db:
        await db.execute(
            "INSERT INTO articles (title, text, content_hash, ingested_at) VALUES (?,?,?,?)",
            ["half", "done", "x", "2023-01-01"],
        )
        assert await _count(store, "SELECT COUNT(*) FROM articles") == 0
    assert await _count(store, "SELECT COUNT(*) FROM articles") == 1


async def test_a_new_article_and_its_route_row_commit_together(store: Store) -> None:
    async def failing_link(db: Any, article_id: int) -> None:
        raise RuntimeError("crash inside the transaction")

    with pytest.raises(RuntimeError):
        await ingest_one(store, draft(1), IngestReport(), link=failing_link)
    assert await _count(store, "SELECT COUNT(*) FROM articles") == 0
    assert await _count(store, "SELECT COUNT(*) FROM route_queue") == 0

    report = IngestReport()
    article_id = await ingest_one(store, draft(1), report)
    assert report.added == [article_id]
    assert await store.fetchall("SELECT article_id FROM route_queue") == [(article_id,)]
    # An update or a duplicate is not routed again.
    changed = draft(1, words=90)
    await ingest_one(store, changed, IngestReport())
    await ingest_one(store, draft(1, words=90), IngestReport())
    assert await _count(store, "SELECT COUNT(*) FROM route_queue") == 1


async def test_a_feed_entry_is_seen_in_the_transaction_of_its_article(store: Store) -> None:
    feeds = FeedRepo(store)
    feed = await feeds.add("https://feed.example/rss", 30)
    link = feeds.entry_linker(feed.id, "guid-1")
    article_id = await ingest_one(
        store, draft(2, origin=f"feed:{feed.url}"), IngestReport(), link=link
    )
    assert await feeds.seen_guids(feed.id, ["guid-1"]) == {"guid-1"}
    assert await feeds.feed_of(article_id) == feed.id  # type: ignore[arg-type]


async def test_a_feed_cannot_overwrite_another_sources_article(store: Store) -> None:
    url = "https://outlet.example/story"
    original = await ingest_one(
        store, draft(3, origin="feed:https://outlet.example/rss", url=url), IngestReport()
    )
    report = IngestReport()
    forged = draft(4, origin="feed:https://evil.example/rss", url=url)
    assert await ingest_one(store, forged, report) is None
    assert report.failed and FOREIGN_URL in report.failed[0][1]
    article = await store.get_article(original)  # type: ignore[arg-type]
    assert article is not None and article.title == "Report 3"
    # The outlet's own feed may still update it, and so may an admin's file or /ingest.
    own = draft(5, origin="feed:https://outlet.example/rss", url=url)
    assert await ingest_one(store, own, IngestReport()) == original
    assert (
        await ingest_one(store, draft(6, origin="/srv/files/a.md", url=url), IngestReport())
        == original
    )


@dataclass
class _Matcher:
    """Topic matches by rule: every article matches CHAT's subscription 1."""

    calls: list[int] = field(default_factory=list)

    async def match_article(self, store: Store, article_id: int) -> list:
        self.calls.append(article_id)
        await asyncio.sleep(0)  # let another router interleave
        return [type("M", (), {"chat_id": CHAT, "subscription_id": 1, "quote": None})()]


async def test_routing_twice_at_once_queues_each_push_once(store: Store) -> None:
    repo = SubscriptionRepo(store)
    await repo.upsert_chat(CHAT, "private")
    ids = [await ingest_one(store, draft(n), IngestReport()) for n in range(10, 15)]
    matcher = _Matcher()
    queued = await asyncio.gather(route_pending(store, matcher), route_pending(store, matcher))
    assert sum(queued) == len(ids)
    rows = await store.fetchall("SELECT article_id FROM deliveries WHERE chat_id = ?", [CHAT])
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert await _count(store, "SELECT COUNT(*) FROM route_queue") == 0


class _Bot:
    """Records sends; fails the calls listed in ``failures`` (by call number) with them."""

    def __init__(self, failures: dict[int, Exception] | None = None) -> None:
        self.failures = failures or {}
        self.sent: list[str] = []
        self.calls = 0

    async def send_message(self, chat_id: int, text: str, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls in self.failures:
            raise self.failures[self.calls]
        self.sent.append(text)
        return type("Message", (), {"message_id": self.calls})()


async def _digest_chat(store: Store, n: int) -> list[int]:
    repo = SubscriptionRepo(store)
    await repo.upsert_chat(CHAT, "private")
    await repo.set_digest(CHAT, "00:00")
    ids = []
    for i in range(n):
        article_id = await ingest_one(store, draft(100 + i, words=400), IngestReport())
        assert article_id is not None
        article = await store.get_article(article_id)
        assert article is not None
        await repo.finish_route(article_id, [(CHAT, None, (0, len(article.text)))])
        ids.append(article_id)
    return ids


async def _parts(store: Store) -> int:
    repo = SubscriptionRepo(store)
    pending = await repo.pending_for(CHAT)
    articles = await store.get_articles(d.article_id for d in pending)
    return len(digest_parts([(d, articles[d.article_id]) for d in pending]))


async def _allow_retry_now(store: Store) -> None:
    async with store.transaction() as db:
        past = utcnow() - timedelta(minutes=1)
        await db.execute(
            "UPDATE chats SET digest_retry_at = ?", [past.isoformat(timespec="seconds")]
        )


async def test_a_failed_digest_part_resends_only_what_was_not_delivered(store: Store) -> None:
    await _digest_chat(store, 12)
    parts = await _parts(store)
    assert parts >= 3
    sender = DeliverySender(store)
    bot = _Bot({2: NetworkError("connection reset")})
    assert await sender.send_digests(bot) == 0  # part 1 went out, part 2 failed
    assert len(bot.sent) == 1
    # Backing off: the next tick sends nothing.
    assert await sender.send_digests(bot) == 0 and bot.calls == 2
    await _allow_retry_now(store)
    assert await sender.send_digests(bot) == 1
    assert len(bot.sent) == parts  # every part once, none twice
    titles = [f"Report {100 + i}" for i in range(12)]
    assert all(sum(t in text for text in bot.sent) == 1 for t in titles)
    assert await sender.send_digests(bot) == 0 and len(bot.sent) == parts  # done for today


async def test_a_digest_part_telegram_refuses_is_given_up_not_retried_forever(
    store: Store,
) -> None:
    await _digest_chat(store, 12)
    parts = await _parts(store)
    sender = DeliverySender(store)
    bot = _Bot({1: BadRequest("Bad Request: something Telegram will never take")})
    await sender.send_digests(bot)  # part 1 refused for good, its pushes failed
    await sender.send_digests(bot)  # the rest
    calls = bot.calls
    for _ in range(5):
        await sender.send_digests(bot)
    assert bot.calls == calls == parts  # no retry loop
    repo = SubscriptionRepo(store)
    assert not await repo.pending_for(CHAT)
    counts = await repo.counts()
    assert counts["failed"] >= 1 and counts["sent"] >= 1


async def test_a_digest_that_keeps_failing_backs_off_then_waits_for_tomorrow(
    store: Store,
) -> None:
    await _digest_chat(store, 3)
    sender = DeliverySender(store)
    bot = _Bot({i: NetworkError("down") for i in range(1, 100)})
    waits = []
    for _ in range(10):
        await sender.send_digests(bot)
        row = await store.fetchone("SELECT digest_retry_at FROM chats WHERE chat_id = ?", [CHAT])
        waits.append(row[0])
        await _allow_retry_now(store)
    assert bot.calls == 6  # then the day is given up
    info = await SubscriptionRepo(store).chat(CHAT)
    assert info is not None and info.last_digest_on == utcnow().date().isoformat()
    assert len(await SubscriptionRepo(store).pending_for(CHAT)) == 3  # kept for tomorrow


async def test_digest_backoff_doubles(store: Store) -> None:
    repo = SubscriptionRepo(store)
    await repo.upsert_chat(CHAT, "private")
    before = utcnow()
    for expected in (1, 2, 4):
        await repo.digest_failed(CHAT, timedelta(seconds=30))
        row = await store.fetchone("SELECT digest_retry_at FROM chats WHERE chat_id = ?", [CHAT])
        from datetime import datetime

        wait = datetime.fromisoformat(row[0]) - before
        assert timedelta(seconds=30 * expected - 2) <= wait <= timedelta(seconds=30 * expected + 5)
