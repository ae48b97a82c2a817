"""Each group's admins, asked of Telegram once per group and TTL instead of per command.

Group /follow, /unfollow and /digest are for the group's admins. Asking getChatMember for
every command cost a Bot API call (and one of the group's 20 requests a minute) per
message; the admin list changes rarely, so it is cached: bounded (least recently used
groups are forgotten), refreshed after ``ttl`` seconds, and dropped as soon as a
``chat_member`` update says someone's admin status changed (Telegram sends those only
where the bot is an admin; elsewhere the TTL bounds how stale the list can be).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from telegram import Bot, Update
from telegram.constants import ChatMemberStatus
from telegram.ext import ContextTypes

ADMIN_STATUSES = (ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR)


class GroupAdmins:
    """A TTL and LRU bounded cache of group admin ids, one Telegram call per group."""

    def __init__(
        self,
        ttl: float = 600.0,
        max_groups: int = 2_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl, self.max_groups, self._clock = ttl, max_groups, clock
        self._cache: OrderedDict[int, tuple[float, frozenset[int]]] = OrderedDict()
        # One fetch per group at a time: concurrent commands share it.
        self._pending: dict[int, asyncio.Task[frozenset[int]]] = {}
        self._stale: set[int] = set()  # forgotten while a fetch was under way

    async def admin_ids(self, bot: Bot, chat_id: int) -> frozenset[int]:
        """The user ids of the group's admins (creator included); may raise TelegramError."""
        cached = self._cache.get(chat_id)
        if cached and cached[0] > self._clock():
            self._cache.move_to_end(chat_id)
            return cached[1]
        task = self._pending.get(chat_id)
        if task is None:
            task = asyncio.create_task(self._fetch(bot, chat_id))
            self._pending[chat_id] = task
        # shield: one caller cancelled does not cancel the fetch the others wait for
        return await asyncio.shield(task)

    async def _fetch(self, bot: Bot, chat_id: int) -> frozenset[int]:
        try:
            members = await bot.get_chat_administrators(chat_id)
        finally:
            del self._pending[chat_id]
            stale = chat_id in self._stale  # the list changed while we asked
            self._stale.discard(chat_id)
        ids = frozenset(m.user.id for m in members if m.status in ADMIN_STATUSES)
        if not stale:  # a stale answer still serves the commands that waited for it
            self._cache[chat_id] = (self._clock() + self.ttl, ids)
            while len(self._cache) > self.max_groups:
                self._cache.popitem(last=False)
        return ids

    def forget(self, chat_id: int) -> None:
        """Drop a group's list: the next command asks Telegram again."""
        self._cache.pop(chat_id, None)
        if chat_id in self._pending:
            self._stale.add(chat_id)


async def on_chat_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Someone's status changed in a group: if they became or stopped being an admin,
    forget the group's cached admins."""
    from bot.telegram.context import state_of  # context imports this module

    change = update.chat_member
    if change is None:
        return
    was = change.old_chat_member.status in ADMIN_STATUSES
    is_ = change.new_chat_member.status in ADMIN_STATUSES
    if was or is_:  # also a change of an admin's rights or anonymity
        state_of(context.bot_data).admins.forget(change.chat.id)
