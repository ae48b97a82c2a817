"""The outbox sender: pushes queued articles to chats within Telegram's limits.

Overall (about 30 messages a second) and per-group (20 a minute) limits, and 429
``retry_after``, are handled by PTB's ``AIORateLimiter`` on the bot; this sender adds
the per-chat pace (one message a second in private chats, one every three seconds in
groups), defers on 429 and network errors, and pauses chats that blocked the bot or
disappeared, telling the admins.

A push is marked sent right after Telegram accepts it; pending pushes survive restarts.
The Bot API has no idempotency key, so one window is left: a crash between Telegram's
answer and that update sends the push again after the restart (at least once, never
lost). A digest goes out part by part, each part's pushes marked sent as soon as
Telegram took it, so a failure or crash in the middle resends only the parts not yet
delivered; a failing digest backs off and is given up for the day after a few tries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from html import escape

from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot.telegram.render import pack, render_push
from bot.telegram.replies import send_html
from corpus.faults import crash_point
from corpus.feed_repo import utcnow
from corpus.models import Article
from corpus.store import Store
from corpus.subscription_repo import Delivery, SubscriptionRepo

log = logging.getLogger(__name__)

PRIVATE_INTERVAL = 1.0
GROUP_INTERVAL = 3.0
MAX_ATTEMPTS = 6
NETWORK_RETRY = timedelta(seconds=10)
DIGEST_RETRY = timedelta(seconds=30)  # doubled after each failed attempt
MAX_DIGEST_FAILURES = 6  # then the day's digest is given up; its pushes wait for tomorrow


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


def _passing(error: TelegramError) -> bool:
    """Whether trying again later may work (in PTB a 400 BadRequest is a NetworkError too,
    but the same request will be refused again)."""
    return isinstance(error, RetryAfter | NetworkError) and not isinstance(error, BadRequest)


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
        html = render_push(article, _quote_of(delivery))
        self.pacer.sent(delivery.chat_id)
        try:
            message = await send_html(bot, delivery.chat_id, html)
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
        crash_point("delivery.after_send")
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
        elif _passing(error) and delivery.attempts + 1 < MAX_ATTEMPTS:
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
        for chat in await self.repo.digest_chats(now.strftime("%H:%M"), today, now):
            count += await self._send_digest(bot, chat.chat_id, today)
        return count

    async def _send_digest(self, bot: Bot, chat_id: int, today: str) -> int:
        """One chat's digest; 1 when it was completed now."""
        pending = await self.repo.pending_for(chat_id)
        articles = await self.store.get_articles(d.article_id for d in pending)
        items = [(d, articles[d.article_id]) for d in pending if d.article_id in articles]
        for html, deliveries in digest_parts(items):
            try:
                message = await send_html(bot, chat_id, html)
            except TelegramError as exc:
                await self._digest_failed(chat_id, deliveries, today, exc)
                return 0
            # Marked part by part: a later failure or a crash resends only what is left.
            await self.repo.mark_sent([d.id for d in deliveries], message.message_id)
            crash_point("digest.after_part")
        await self.repo.mark_digest_day(chat_id, today)
        return 1 if items else 0

    async def _digest_failed(
        self, chat_id: int, deliveries: list[Delivery], today: str, error: TelegramError
    ) -> None:
        """Pause a chat that is gone; give up a part Telegram will never take; back off
        (doubling, then give the day up) on passing errors."""
        reason = f"{type(error).__name__}: {error}"
        if _gone(error):
            await self.repo.pause_chat(chat_id, reason)
            return
        if not _passing(error):
            for delivery in deliveries:  # this part can never go out as it is
                await self.repo.fail(delivery.id, reason)
            log.warning("digest part for chat %s refused: %s", chat_id, reason)
            return  # the rest goes out at the next tick
        wait = None
        if isinstance(error, RetryAfter):
            retry = error.retry_after
            wait = retry if isinstance(retry, timedelta) else timedelta(seconds=retry)
        failures = await self.repo.digest_failed(chat_id, DIGEST_RETRY, at_least=wait)
        if failures >= MAX_DIGEST_FAILURES:
            log.warning("digest for chat %s given up today after %d tries", chat_id, failures)
            await self.repo.mark_digest_day(chat_id, today)


def _quote_of(delivery: Delivery) -> tuple[int, int] | None:
    if delivery.quote_start is None or delivery.quote_end is None:
        return None
    return delivery.quote_start, delivery.quote_end


def digest_parts(items: list[tuple[Delivery, Article]]) -> list[tuple[str, list[Delivery]]]:
    """A digest as messages, each with the pushes it carries (a header on the first)."""
    if not items:
        return []
    header = f"<b>Your news digest: {len(items)} new article{'s' if len(items) != 1 else ''}</b>"
    parts: list[tuple[str, list[Delivery]]] = []
    html, carried = header, list[Delivery]()
    for delivery, article in items:
        joined = pack([html, render_push(article, _quote_of(delivery))])  # its own limits
        if len(joined) == 1:
            html, carried = joined[0], [*carried, delivery]
        else:
            parts.append((html, carried))
            html, carried = joined[-1], [delivery]
    parts.append((html, carried))
    return parts
