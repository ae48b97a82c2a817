"""Sliding-window rate limits with a bounded memory: per user, and the flood gate's per chat.

Plain Python (no Telegram types), so the deciding logic is tested without a bot.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass


class UserRateLimiter:
    """At most ``per_minute`` events a minute per key (a user, a chat...).

    Remembers the ``max_users`` most recently seen keys; an evicted key starts afresh,
    which only ever errs towards letting someone through.
    """

    def __init__(
        self,
        per_minute: int,
        max_users: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.max_users = max_users
        self._clock = clock
        self._seen: OrderedDict[Hashable, deque[float]] = OrderedDict()

    def allow(self, user_id: Hashable) -> float:
        """0 when allowed (and counted); otherwise seconds until the next allowed event."""
        return self._check(user_id, count=True)

    def peek(self, user_id: Hashable) -> float:
        """Like :meth:`allow`, but counts nothing: 0 if an event would be allowed now."""
        return self._check(user_id, count=False)

    def _check(self, key: Hashable, count: bool) -> float:
        if self.per_minute <= 0:
            return 0.0
        now = self._clock()
        window = self._seen.pop(key, None) or deque()
        while window and now - window[0] >= 60:
            window.popleft()
        wait = 0.0
        if len(window) >= self.per_minute:
            wait = 60 - (now - window[0])
        elif count:
            window.append(now)
        if window:
            self._seen[key] = window  # most recent last
        while len(self._seen) > self.max_users:
            self._seen.popitem(last=False)
        return wait


@dataclass(frozen=True)
class Verdict:
    """What the flood gate decided about one update."""

    allowed: bool
    wait: float = 0.0  # seconds until this chat/sender may be answered again
    note: bool = False  # drop with a one-off "slow down" note (the first drop of a window)
    by_chat: bool = False  # the chat's budget ran out (not only the sender's)


ALLOWED = Verdict(True)


class FloodGate:
    """Budgets for updates the bot would answer: per group or channel, and per sender.

    A sender is a user, or the chat an anonymous group admin or a channel writes as.
    Excess updates are dropped; of the drops in one chat, only the first of each window
    earns a note, so a flood costs the chat (and Telegram's per-group limit) one message.
    """

    def __init__(
        self,
        chat_per_minute: int,
        sender_per_minute: int,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._chats = UserRateLimiter(chat_per_minute, max_keys, clock)
        self._senders = UserRateLimiter(sender_per_minute, max_keys, clock)
        self._noted: OrderedDict[int, float] = OrderedDict()  # chat -> no note before
        self._max_keys = max_keys
        self._clock = clock

    def check(self, chat_id: int, sender: int, *, shared_chat: bool) -> Verdict:
        """Count an update from ``sender`` in ``chat_id`` if both budgets allow it.

        ``shared_chat``: a group or channel, whose budget all its senders share (a private
        chat has only the sender's). Nothing is counted for a dropped update, so a flood
        does not use up the budget the chat gets back as its window slides.
        """
        chat_wait = self._chats.peek(chat_id) if shared_chat else 0.0
        sender_wait = self._senders.peek(sender)
        if chat_wait or sender_wait:
            return self._drop(chat_id, max(chat_wait, sender_wait), by_chat=bool(chat_wait))
        if shared_chat:
            self._chats.allow(chat_id)
        self._senders.allow(sender)
        return ALLOWED

    def _drop(self, chat_id: int, wait: float, by_chat: bool) -> Verdict:
        now = self._clock()
        quiet_until = self._noted.pop(chat_id, float("-inf"))
        note = now >= quiet_until
        self._noted[chat_id] = now + wait if note else quiet_until  # most recent last
        while len(self._noted) > self._max_keys:
            self._noted.popitem(last=False)
        return Verdict(False, wait, note, by_chat)
