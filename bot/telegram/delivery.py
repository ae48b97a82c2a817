"""The outbox sender: pushes queued articles to chats within Telegram's limits.

Overall (about 30 messages a second) and per-group (20 a minute) limits, and 429
``retry_after``, are handled by PTB's ``AIORateLimiter`` on the bot; this sender adds
the per-chat pace (one message a second in private chats, one every three seconds in
groups), defers on 429 and network errors, and pauses chats that blocked the bot or
disappeared, telling the admins.

A push is marked sent right after Telegram accepts it; pending pushes survive restarts.
The one window for a double is a crash between Telegram's answer and that update.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from html import escape

from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.telegram.render import render_digest, render_push, strip_html
from bot.telegram.replies import NO_PREVIEW
from corpus.feed_repo import utcnow
from corpus.models import Article
from corpus.store import Store
from corpus.subscription_repo import Delivery, SubscriptionRepo

log = logging.getLogger(__name__)

PRIVATE_INTERVAL = 1.0
GROUP_INTERVAL = 3.0
MAX_ATTEMPTS = 6
NETWORK_RETRY = timedelta(seconds=10)


class ChatPacer:
    """Seconds between messages to one chat; remembers only the last minute."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[int, float] = {}

    def wait(self, chat_id: int, is_group: bool) -> float:
        """0 when a message may go to the chat now, else the seconds to wait."""
        last = self._last.get(chat_id)
        if last is None:
            return 0.0
        interval = GROUP_INTERVAL if is_group else PRIVATE_INTERVAL
        return max(0.0, last + interval - self._clock())

    def sent(self, chat_id: int) -> None:
        """Record a message to the chat (and forget chats idle for a minute)."""
        now = self._clock()
        self._last[chat_id] = now
        if len(self._last) > 1000:
            self._last = {c: t for c, t in self._last.items() if now - t < 60}


def _is_group(chat_type: str) -> bool:
    return chat_type in ("group", "supergroup")


def _gone(error: TelegramError) -> bool:
    """Whether the chat is unreachable for good (blocked, kicked, deleted)."""
    text = str(error).lower()
    return isinstance(error, Forbidden) or "chat not found" in text or "chat_id is empty" in text


class DeliverySender:
    """Sends due pushes from the outbox; call :meth:`send_due` from a repeating job."""

    def __init__(
        self,
        store: Store,
        notify_admins: Callable[[str], object] | None = None,
        pacer: ChatPacer | None = None,
    ) -> None:
        self.store = store
        self.repo = SubscriptionRepo(store)
        self.pacer = pacer or ChatPacer()
        self.notify_admins = notify_admins
        # One sender at a time: two overlapping rounds would both see a pending push.
        self._lock = asyncio.Lock()

    async def send_due(self, bot: Bot, limit: int = 100) -> int:
        """Send the pushes whose time has come; returns how many went out."""
        async with self._lock:
            return await self._send_due(bot, limit)

    async def _send_due(self, bot: Bot, limit: int) -> int:
        sent = 0
        for delivery in await self.repo.due(limit):
            if self.pacer.wait(delivery.chat_id, _is_group(delivery.chat_type)):
                continue  # the next tick
            article = await self.store.get_article(delivery.article_id)
            if article is None:
                await self.repo.fail(delivery.id, "the article was deleted")
                continue
            sent += await self._send(bot, delivery, article)
        return sent

    async def _send(self, bot: Bot, delivery: Delivery, article: Article) -> int:
        quote = (
            (delivery.quote_start, delivery.quote_end)
            if delivery.quote_start is not None and delivery.quote_end is not None
            else None
        )
        html = render_push(article, quote)
        self.pacer.sent(delivery.chat_id)
        try:
            message = await _send_html(bot, delivery.chat_id, html)
        except RetryAfter as exc:
            wait = (
                exc.retry_after
                if isinstance(exc.retry_after, timedelta)
                else timedelta(seconds=exc.retry_after)
            )
            await self.repo.defer(delivery.id, utcnow() + wait, "429 Too Many Requests")
            return 0
        except TelegramError as exc:
            await self._failed(delivery, exc)
            return 0
        await self.repo.mark_sent([delivery.id], message.message_id)
        return 1

    async def _failed(self, delivery: Delivery, error: TelegramError) -> None:
        if _gone(error):
            reason = f"{type(error).__name__}: {error}"
            await self.repo.pause_chat(delivery.chat_id, reason)
            log.warning("paused pushes to chat %s: %s", delivery.chat_id, reason)
            if self.notify_admins:
                await self.notify_admins(
                    f"Paused pushes to chat {delivery.chat_id}: {escape(reason)}"
                )  # type: ignore[misc]
        elif isinstance(error, NetworkError) and delivery.attempts + 1 < MAX_ATTEMPTS:
            await self.repo.defer(
                delivery.id, utcnow() + NETWORK_RETRY * (delivery.attempts + 1), str(error)
            )
        else:
            await self.repo.fail(delivery.id, f"{type(error).__name__}: {error}")

    async def send_digests(self, bot: Bot) -> int:
        """Send the daily digest of every chat whose digest time has come today."""
        async with self._lock:
            return await self._send_digests(bot)

    async def _send_digests(self, bot: Bot) -> int:
        now = utcnow()
        today = now.date().isoformat()
        count = 0
        for chat in await self.repo.digest_chats(now.strftime("%H:%M"), today):
            pending = await self.repo.pending_for(chat.chat_id)
            articles = await self.store.get_articles(d.article_id for d in pending)
            items = [
                (
                    articles[d.article_id],
                    (d.quote_start, d.quote_end) if d.quote_start is not None else None,
                )
                for d in pending
                if d.article_id in articles
            ]
            if not items:
                await self.repo.mark_digest_day(chat.chat_id, today)
                continue
            message_id = None
            try:
                for html in render_digest(items):  # type: ignore[arg-type]
                    message = await _send_html(bot, chat.chat_id, html)
                    message_id = message_id or message.message_id
            except RetryAfter:
                continue  # the next tick tries again; nothing was marked
            except TelegramError as exc:
                if _gone(exc):
                    await self.repo.pause_chat(chat.chat_id, f"{type(exc).__name__}: {exc}")
                continue
            await self.repo.mark_sent([d.id for d in pending], message_id, digest_on=today)
            count += 1
        return count


async def _send_html(bot: Bot, chat_id: int, html: str):
    """Send HTML; if Telegram rejects the entities, send the same text plain."""
    try:
        return await bot.send_message(
            chat_id, html, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
        )
    except BadRequest as exc:
        if "can't parse entities" not in str(exc).lower():
            raise
        return await bot.send_message(chat_id, strip_html(html), link_preview_options=NO_PREVIEW)
