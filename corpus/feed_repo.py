"""Feeds and channel sources in the store: what to poll, when, and what was seen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite

from corpus.store import ArticleLinker, Store

MAX_BACKOFF = timedelta(hours=12)


def utcnow() -> datetime:
    """The current time in UTC (one place, so tests and jobs agree)."""
    return datetime.now(UTC)


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Feed:
    """An RSS/Atom feed polled every ``interval_minutes``."""

    id: int
    url: str
    title: str
    interval_minutes: int
    etag: str | None
    last_modified: str | None
    last_fetch_at: datetime | None
    last_error: str | None
    failures: int
    next_run_at: datetime


@dataclass(frozen=True)
class ChannelSource:
    """A Telegram channel whose posts become articles once a bot admin approved it."""

    chat_id: int
    title: str
    username: str | None
    status: str = "approved"  # pending | approved

    @property
    def approved(self) -> bool:
        """Whether its posts count as news."""
        return self.status == "approved"


_CHANNEL_COLUMNS = "chat_id, title, username, status"


_FEED_COLUMNS = (
    "id, url, title, interval_minutes, etag, last_modified, last_fetch_at, last_error,"
    " failures, next_run_at"
)


def _feed(row: Sequence[Any]) -> Feed:
    return Feed(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        _dt(row[6]),
        row[7],
        row[8],
        _dt(row[9]) or utcnow(),
    )


def backoff(interval_minutes: int, failures: int) -> timedelta:
    """The wait after ``failures`` consecutive failures: doubling, capped at 12 hours."""
    wait = timedelta(minutes=interval_minutes) * (2 ** min(failures, 10))
    return min(wait, max(MAX_BACKOFF, timedelta(minutes=interval_minutes)))


class FeedRepo:
    """Feed, feed-entry and channel-source rows."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, url: str, interval_minutes: int, added_by: int | None = None) -> Feed:
        """Add a feed (or return the existing one for that URL); it is due at once."""
        now = _ts(utcnow())
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT OR IGNORE INTO feeds (url, interval_minutes, next_run_at, added_by,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                [url, interval_minutes, now, added_by, now],
            )
        feed = await self.by_url(url)
        assert feed is not None
        return feed

    async def by_url(self, url: str) -> Feed | None:
        """The feed with this URL."""
        row = await self.store.fetchone(f"SELECT {_FEED_COLUMNS} FROM feeds WHERE url = ?", [url])
        return _feed(row) if row else None

    async def get(self, feed_id: int) -> Feed | None:
        """One feed by id."""
        row = await self.store.fetchone(
            f"SELECT {_FEED_COLUMNS} FROM feeds WHERE id = ?", [feed_id]
        )
        return _feed(row) if row else None

    async def all(self) -> list[Feed]:
        """Every feed, by id."""
        rows = await self.store.fetchall(f"SELECT {_FEED_COLUMNS} FROM feeds ORDER BY id")
        return [_feed(r) for r in rows]

    async def due(self, now: datetime | None = None) -> list[Feed]:
        """Feeds whose next run has come."""
        rows = await self.store.fetchall(
            f"SELECT {_FEED_COLUMNS} FROM feeds WHERE next_run_at <= ? ORDER BY next_run_at",
            [_ts(now or utcnow())],
        )
        return [_feed(r) for r in rows]

    async def remove(self, feed_id: int) -> bool:
        """Remove a feed (its subscriptions go with it; its articles stay)."""
        async with self.store.transaction() as db:
            cur = await db.execute("DELETE FROM feeds WHERE id = ?", [feed_id])
            return cur.rowcount > 0

    async def record_success(
        self,
        feed: Feed,
        *,
        title: str | None,
        etag: str | None,
        last_modified: str | None,
        now: datetime | None = None,
    ) -> None:
        """A fetch worked (or was not modified): reset failures, schedule the next run."""
        now = now or utcnow()
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE feeds SET title = COALESCE(?, title), etag = ?, last_modified = ?,"
                " last_fetch_at = ?, last_error = NULL, failures = 0, next_run_at = ?"
                " WHERE id = ?",
                [
                    title,
                    etag,
                    last_modified,
                    _ts(now),
                    _ts(now + timedelta(minutes=feed.interval_minutes)),
                    feed.id,
                ],
            )

    async def record_failure(self, feed: Feed, error: str, now: datetime | None = None) -> None:
        """A fetch failed: keep the reason, back off exponentially."""
        now = now or utcnow()
        failures = feed.failures + 1
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE feeds SET last_fetch_at = ?, last_error = ?, failures = ?,"
                " next_run_at = ? WHERE id = ?",
                [
                    _ts(now),
                    error[:500],
                    failures,
                    _ts(now + backoff(feed.interval_minutes, failures)),
                    feed.id,
                ],
            )

    async def seen_guids(self, feed_id: int, guids: Sequence[str]) -> set[str]:
        """Which of these entry ids the feed has produced before."""
        if not guids:
            return set()
        marks = ",".join("?" * len(guids))
        rows = await self.store.fetchall(
            f"SELECT guid FROM feed_entries WHERE feed_id = ? AND guid IN ({marks})",
            [feed_id, *guids],
        )
        return {r[0] for r in rows}

    async def mark_seen(self, feed_id: int, guid: str, article_id: int | None) -> None:
        """Remember an entry (and the article it became), and where the article came from."""
        async with self.store.transaction() as db:
            await _write_entry(db, feed_id, guid, article_id)

    @staticmethod
    def entry_linker(feed_id: int, guid: str) -> ArticleLinker:
        """Marks the entry seen in the same transaction as the article it became, so a
        crash never leaves an entry seen without its article (nor the reverse)."""

        async def link(db: aiosqlite.Connection, article_id: int) -> None:
            await _write_entry(db, feed_id, guid, article_id)

        return link

    async def feed_of(self, article_id: int) -> int | None:
        """The feed an article came from, if any."""
        row = await self.store.fetchone(
            "SELECT feed_id FROM article_origins WHERE article_id = ?", [article_id]
        )
        return row[0] if row else None

    # -- channel sources ------------------------------------------------------------

    async def add_channel(
        self,
        chat_id: int,
        title: str,
        username: str | None,
        enabled_by: int | None,
        *,
        approved: bool = True,
    ) -> ChannelSource:
        """Record a channel as a source, approved (a bot admin asked) or pending (the
        channel asked); refreshes its title and username, and never un-approves it."""
        status = "approved" if approved else "pending"
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT INTO channel_sources (chat_id, title, username, enabled_by, created_at,"
                " status) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(chat_id) DO UPDATE SET"
                " title = excluded.title, username = excluded.username,"
                " status = CASE WHEN status = 'approved' THEN 'approved' ELSE excluded.status END",
                [chat_id, title, username, enabled_by, _ts(utcnow()), status],
            )
        found = await self.channel(chat_id)
        assert found is not None
        return found

    async def approve_channel(self, chat_id: int, approved_by: int) -> ChannelSource | None:
        """A bot admin's approval of a pending channel; None when no channel asked."""
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE channel_sources SET status = 'approved', enabled_by = ? WHERE chat_id = ?",
                [approved_by, chat_id],
            )
        return await self.channel(chat_id)

    async def remove_channel(self, chat_id: int) -> bool:
        """Stop taking posts from a channel (its articles stay)."""
        async with self.store.transaction() as db:
            cur = await db.execute("DELETE FROM channel_sources WHERE chat_id = ?", [chat_id])
            return cur.rowcount > 0

    async def channel(self, chat_id: int) -> ChannelSource | None:
        """The channel source with this chat id."""
        row = await self.store.fetchone(
            f"SELECT {_CHANNEL_COLUMNS} FROM channel_sources WHERE chat_id = ?", [chat_id]
        )
        return ChannelSource(*row) if row else None

    async def channels(self) -> list[ChannelSource]:
        """Every channel source, approved or pending."""
        rows = await self.store.fetchall(
            f"SELECT {_CHANNEL_COLUMNS} FROM channel_sources ORDER BY chat_id"
        )
        return [ChannelSource(*r) for r in rows]

    @staticmethod
    def channel_linker(channel_id: int) -> ArticleLinker:
        """Records the channel an article came from, in the article's transaction."""

        async def link(db: aiosqlite.Connection, article_id: int) -> None:
            await db.execute(
                "INSERT OR IGNORE INTO article_origins (article_id, channel_id) VALUES (?, ?)",
                [article_id, channel_id],
            )

        return link


async def _write_entry(
    db: aiosqlite.Connection, feed_id: int, guid: str, article_id: int | None
) -> None:
    """A feed entry seen (and the article it became, with the feed as its origin)."""
    await db.execute(
        "INSERT OR IGNORE INTO feed_entries (feed_id, guid, article_id, seen_at)"
        " VALUES (?, ?, ?, ?)",
        [feed_id, guid, article_id, _ts(utcnow())],
    )
    if article_id is not None:
        await db.execute(
            "INSERT OR IGNORE INTO article_origins (article_id, feed_id) VALUES (?, ?)",
            [article_id, feed_id],
        )
