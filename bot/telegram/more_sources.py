"""The quotes behind "More sources" buttons, kept in SQLite (table ``more_quotes``).

A button carries only a key. The key is random and unguessable, and it is good only in
the chat it was sent to: callback data comes from the client and can be forged, so a key
from another chat shows nothing. Keys survive restarts (an old button still shows its own
answer's quotes). The table is bounded: on every insert rows older than ``KEEP_DAYS`` go,
and only the newest ``MAX_ROWS`` stay.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bot.answering.models import Quote
from corpus.store import Store
from corpus.text import valid_unicode

KEEP_DAYS = 30
MAX_ROWS = 20_000
# 16 random bytes: 22 characters, and "more:" + key stays far below Telegram's 64-byte
# callback_data limit.
KEY_BYTES = 16
MAX_KEY_CHARS = 64


def _quote(data: dict[str, Any]) -> Quote:
    published = data.get("published_at")
    return Quote(
        article_id=int(data["article_id"]),
        start=int(data["start"]),
        end=int(data["end"]),
        text=str(data["text"]),
        title=str(data["title"]),
        source=str(data["source"]),
        published_at=date.fromisoformat(published) if published else None,
        url=data.get("url"),
    )


async def remember(
    store: Store, chat_id: int, quotes: tuple[Quote, ...], now: datetime | None = None
) -> str:
    """Store ``quotes`` for a button in ``chat_id``; returns the button's key."""
    now = now or datetime.now(UTC)
    key = secrets.token_urlsafe(KEY_BYTES)
    payload = json.dumps([q.as_json() for q in quotes], ensure_ascii=False)
    async with store.transaction() as db:
        await db.execute(
            "INSERT INTO more_quotes (key, chat_id, quotes, created_at) VALUES (?, ?, ?, ?)",
            (key, chat_id, payload, now.isoformat()),
        )
        await db.execute(
            "DELETE FROM more_quotes WHERE created_at < ?",
            ((now - timedelta(days=KEEP_DAYS)).isoformat(),),
        )
        await db.execute(
            "DELETE FROM more_quotes WHERE key IN (SELECT key FROM more_quotes "
            "ORDER BY created_at DESC LIMIT -1 OFFSET ?)",
            (MAX_ROWS,),
        )
    return key


async def recall(
    store: Store, chat_id: int, key: str, now: datetime | None = None
) -> tuple[Quote, ...] | None:
    """The quotes of ``key`` if it was made for ``chat_id`` and is not too old; else None."""
    key = valid_unicode(key)  # callback data comes from the client
    if not key or len(key) > MAX_KEY_CHARS:
        return None
    row = await store.fetchone(
        "SELECT quotes, created_at FROM more_quotes WHERE key = ? AND chat_id = ?",
        (key, chat_id),
    )
    if row is None:
        return None
    now = now or datetime.now(UTC)
    if datetime.fromisoformat(row[1]) < now - timedelta(days=KEEP_DAYS):
        return None  # not pruned yet (no answer since), but as good as gone
    return tuple(_quote(item) for item in json.loads(row[0]))
