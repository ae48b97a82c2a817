"""Chats, their subscriptions, the route queue and the delivery outbox.

Both are durable. A new article's ``route_queue`` row is written with the article; routing
turns it into ``deliveries`` rows and deletes it in one transaction, so an article is
routed once however often routing is interrupted. ``UNIQUE (chat_id, article_id)`` makes
sure an article is queued for a chat at most once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from corpus.feed_repo import _ts, utcnow
from corpus.store import Store


@dataclass(frozen=True)
class Subscription:
    """A chat follows a topic (words or a question) or a feed."""

    id: int
    chat_id: int
    kind: str  # topic | feed
    query: str
    feed_id: int | None


@dataclass(frozen=True)
class Delivery:
    """One pending or sent push of an article to a chat."""

    id: int
    chat_id: int
    article_id: int
    subscription_id: int | None
    quote_start: int | None
    quote_end: int | None
    status: str
    attempts: int
    chat_type: str


@dataclass(frozen=True)
class ChatInfo:
    """What newsbot knows about a chat."""

    chat_id: int
    chat_type: str
    title: str
    digest_time: str | None
    last_digest_on: str | None
    paused_reason: str | None


_SUB_COLUMNS = "id, chat_id, kind, query, feed_id"
_DELIVERY_COLUMNS = (
    "d.id, d.chat_id, d.article_id, d.subscription_id, d.quote_start, d.quote_end, d.status,"
    " d.attempts, c.chat_type"
)


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(*row)


class SubscriptionRepo:
    """Chats, subscriptions and deliveries."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- chats -----------------------------------------------------------------------

    async def upsert_chat(self, chat_id: int, chat_type: str, title: str = "") -> None:
        """Record a chat (its type and title may change)."""
        async with self.store.transaction() as db:
            await db.execute(
                "INSERT INTO chats (chat_id, chat_type, title, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(chat_id) DO UPDATE SET chat_type = excluded.chat_type,"
                " title = excluded.title, updated_at = excluded.updated_at",
                [chat_id, chat_type, title, _ts(utcnow())],
            )

    async def chat(self, chat_id: int) -> ChatInfo | None:
        """A chat's settings."""
        row = await self.store.fetchone(
            "SELECT chat_id, chat_type, title, digest_time, last_digest_on, paused_reason"
            " FROM chats WHERE chat_id = ?",
            [chat_id],
        )
        return ChatInfo(*row) if row else None

    async def set_digest(self, chat_id: int, digest_time: str | None) -> None:
        """Daily digest at ``HH:MM`` (UTC) instead of instant pushes; None turns it off."""
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE chats SET digest_time = ? WHERE chat_id = ?", [digest_time, chat_id]
            )

    async def pause_chat(self, chat_id: int, reason: str) -> None:
        """Stop pushing to a chat (blocked, removed, gone); its pending pushes are dropped."""
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE chats SET paused_reason = ? WHERE chat_id = ?", [reason, chat_id]
            )
            await db.execute(
                "UPDATE deliveries SET status = 'dropped', last_error = ?"
                " WHERE chat_id = ? AND status = 'pending'",
                [reason, chat_id],
            )

    async def resume_chat(self, chat_id: int) -> bool:
        """Push to a paused chat again (it wrote to the bot, or re-added it)."""
        async with self.store.transaction() as db:
            cur = await db.execute(
                "UPDATE chats SET paused_reason = NULL"
                " WHERE chat_id = ? AND paused_reason IS NOT NULL",
                [chat_id],
            )
            return cur.rowcount > 0

    async def paused_chats(self) -> list[ChatInfo]:
        """Chats whose pushes are paused, with the reason."""
        rows = await self.store.fetchall(
            "SELECT chat_id, chat_type, title, digest_time, last_digest_on, paused_reason"
            " FROM chats WHERE paused_reason IS NOT NULL ORDER BY chat_id"
        )
        return [ChatInfo(*r) for r in rows]

    # -- subscriptions ----------------------------------------------------------------

    async def add(
        self,
        chat_id: int,
        kind: str,
        *,
        query: str = "",
        feed_id: int | None = None,
        created_by: int | None = None,
    ) -> Subscription:
        """Add a topic or feed subscription for a chat (the chat must be recorded)."""
        async with self.store.transaction() as db:
            cur = await db.execute(
                "INSERT INTO subscriptions (chat_id, kind, query, feed_id, created_by,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [chat_id, kind, query, feed_id, created_by, _ts(utcnow())],
            )
            sub_id = int(cur.lastrowid or 0)
        return Subscription(sub_id, chat_id, kind, query, feed_id)

    async def for_chat(self, chat_id: int) -> list[Subscription]:
        """A chat's subscriptions."""
        rows = await self.store.fetchall(
            f"SELECT {_SUB_COLUMNS} FROM subscriptions WHERE chat_id = ? ORDER BY id", [chat_id]
        )
        return [Subscription(*r) for r in rows]

    async def remove(self, chat_id: int, sub_id: int) -> bool:
        """Remove one of a chat's subscriptions."""
        async with self.store.transaction() as db:
            cur = await db.execute(
                "DELETE FROM subscriptions WHERE id = ? AND chat_id = ?", [sub_id, chat_id]
            )
            return cur.rowcount > 0

    async def query_vectors(self, model: str) -> dict[int, bytes]:
        """Stored topic-query vectors of ``model``, by subscription id."""
        rows = await self.store.fetchall(
            "SELECT id, query_vector FROM subscriptions"
            " WHERE kind = 'topic' AND query_model = ? AND query_vector IS NOT NULL",
            [model],
        )
        return {r[0]: r[1] for r in rows}

    async def put_query_vectors(self, model: str, vectors: dict[int, bytes]) -> None:
        """Store topic-query vectors computed with ``model``."""
        async with self.store.transaction() as db:
            await db.executemany(
                "UPDATE subscriptions SET query_model = ?, query_vector = ? WHERE id = ?",
                [(model, v, sub_id) for sub_id, v in vectors.items()],
            )

    async def active(self, kind: str | None = None) -> list[Subscription]:
        """Subscriptions of chats that are not paused (optionally of one kind)."""
        sql = (
            f"SELECT s.{_SUB_COLUMNS.replace(', ', ', s.')} FROM subscriptions s"
            " JOIN chats c ON c.chat_id = s.chat_id WHERE c.paused_reason IS NULL"
        )
        params: list[Any] = []
        if kind:
            sql += " AND s.kind = ?"
            params.append(kind)
        rows = await self.store.fetchall(sql + " ORDER BY s.id", params)
        return [Subscription(*r) for r in rows]

    # -- the outbox -------------------------------------------------------------------

    async def enqueue(
        self,
        chat_id: int,
        article_id: int,
        subscription_id: int | None,
        quote: tuple[int, int] | None = None,
    ) -> bool:
        """Queue a push; False when this article was already queued or sent to this chat."""
        async with self.store.transaction() as db:
            return await _insert_delivery(db, chat_id, article_id, subscription_id, quote)

    # -- routing ------------------------------------------------------------------------

    async def routes_waiting(self, limit: int = 100) -> list[int]:
        """Articles waiting to be routed to their followers, oldest first."""
        rows = await self.store.fetchall(
            "SELECT article_id FROM route_queue ORDER BY created_at, article_id LIMIT ?", [limit]
        )
        return [r[0] for r in rows]

    async def finish_route(
        self, article_id: int, pushes: Sequence[tuple[int, int | None, tuple[int, int] | None]]
    ) -> int:
        """Queue an article's pushes, (chat, subscription, quote) each, and take it off the
        route queue, in one transaction; returns how many pushes were new."""
        queued = 0
        async with self.store.transaction() as db:
            for chat_id, subscription_id, quote in pushes:
                queued += await _insert_delivery(db, chat_id, article_id, subscription_id, quote)
            await db.execute("DELETE FROM route_queue WHERE article_id = ?", [article_id])
        return queued

    async def due(self, limit: int = 100, now: datetime | None = None) -> list[Delivery]:
        """Pending instant pushes whose time has come, oldest first (digest chats excluded)."""
        rows = await self.store.fetchall(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d JOIN chats c ON c.chat_id = d.chat_id"
            " WHERE d.status = 'pending' AND d.not_before <= ? AND c.paused_reason IS NULL"
            " AND c.digest_time IS NULL ORDER BY d.id LIMIT ?",
            [_ts(now or utcnow()), limit],
        )
        return [_delivery(r) for r in rows]

    async def pending_for(self, chat_id: int) -> list[Delivery]:
        """A chat's pending pushes (for its digest)."""
        rows = await self.store.fetchall(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d JOIN chats c ON c.chat_id = d.chat_id"
            " WHERE d.chat_id = ? AND d.status = 'pending' ORDER BY d.id",
            [chat_id],
        )
        return [_delivery(r) for r in rows]

    async def digest_chats(
        self, hhmm: str, today: str, now: datetime | None = None
    ) -> list[ChatInfo]:
        """Chats whose digest time has come by ``hhmm``, that had no digest ``today``, and
        that are not waiting after a failed attempt."""
        rows = await self.store.fetchall(
            "SELECT chat_id, chat_type, title, digest_time, last_digest_on, paused_reason"
            " FROM chats WHERE digest_time <= ? AND paused_reason IS NULL"
            " AND (last_digest_on IS NULL OR last_digest_on < ?)"
            " AND (digest_retry_at IS NULL OR digest_retry_at <= ?)",
            [hhmm, today, _ts(now or utcnow())],
        )
        return [ChatInfo(*r) for r in rows]

    async def digest_failed(
        self, chat_id: int, base: timedelta, at_least: timedelta | None = None
    ) -> int:
        """Count a failed digest attempt and hold the next one back (``base`` doubled per
        failure so far today, and at least ``at_least``); returns the failures so far."""
        async with self.store.transaction() as db:
            async with db.execute(
                "SELECT digest_failures FROM chats WHERE chat_id = ?", [chat_id]
            ) as cur:
                row = await cur.fetchone()
            failures = (int(row[0]) if row else 0) + 1
            wait = max(base * 2 ** min(failures - 1, 10), at_least or timedelta(0))
            await db.execute(
                "UPDATE chats SET digest_failures = ?, digest_retry_at = ? WHERE chat_id = ?",
                [failures, _ts(utcnow() + wait), chat_id],
            )
        return failures

    async def mark_sent(
        self, delivery_ids: Sequence[int], message_id: int | None, digest_on: str | None = None
    ) -> None:
        """Record pushes as sent (and, for a digest, the day it went out)."""
        now = _ts(utcnow())
        async with self.store.transaction() as db:
            await db.executemany(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, message_id = ?,"
                " attempts = attempts + 1 WHERE id = ?",
                [(now, message_id, i) for i in delivery_ids],
            )
            if digest_on and delivery_ids:
                await db.execute(
                    "UPDATE chats SET last_digest_on = ? WHERE chat_id ="
                    " (SELECT chat_id FROM deliveries WHERE id = ?)",
                    [digest_on, delivery_ids[0]],
                )

    async def mark_digest_day(self, chat_id: int, day: str) -> None:
        """Remember that a chat's digest for ``day`` is done (even an empty one, or one
        given up after repeated failures); the next day starts without failures."""
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE chats SET last_digest_on = ?, digest_failures = 0,"
                " digest_retry_at = NULL WHERE chat_id = ?",
                [day, chat_id],
            )

    async def defer(self, delivery_id: int, until: datetime, error: str) -> None:
        """Try a push again later (a 429's retry_after, a network error)."""
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE deliveries SET not_before = ?, attempts = attempts + 1, last_error = ?"
                " WHERE id = ?",
                [_ts(until), error[:300], delivery_id],
            )

    async def fail(self, delivery_id: int, error: str) -> None:
        """Give up on a push (too many attempts, or a message Telegram will never take)."""
        async with self.store.transaction() as db:
            await db.execute(
                "UPDATE deliveries SET status = 'failed', last_error = ? WHERE id = ?",
                [error[:300], delivery_id],
            )

    async def counts(self) -> dict[str, int]:
        """Deliveries per status."""
        rows = await self.store.fetchall("SELECT status, COUNT(*) FROM deliveries GROUP BY status")
        return {status: n for status, n in rows}


async def _insert_delivery(
    db: aiosqlite.Connection,
    chat_id: int,
    article_id: int,
    subscription_id: int | None,
    quote: tuple[int, int] | None,
) -> bool:
    """One outbox row, due now; False when the chat already has this article queued."""
    now = _ts(utcnow())
    cur = await db.execute(
        "INSERT OR IGNORE INTO deliveries (chat_id, article_id, subscription_id,"
        " quote_start, quote_end, not_before, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [chat_id, article_id, subscription_id, *(quote or (None, None)), now, now],
    )
    return cur.rowcount > 0
