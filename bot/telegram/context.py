"""Typed access to what the application keeps in ``bot_data``."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.answering.models import Quote
from bot.settings import Settings
from bot.telegram.ratelimit import UserRateLimiter

if TYPE_CHECKING:
    from bot.answering.engine import AnswerEngine
    from bot.services import Services
    from bot.telegram.delivery import DeliverySender

MORE_CACHE_SIZE = 1000


@dataclass
class BotState:
    """The bot's long-lived state: settings, services, limits, and pending "more" quotes."""

    settings: Settings
    limiter: UserRateLimiter
    services: Services | None = None
    engine: AnswerEngine | None = None
    more: OrderedDict[str, tuple[Quote, ...]] = field(default_factory=OrderedDict)
    next_more_id: int = 0
    reindexing: bool = False
    polling: bool = False
    sender: DeliverySender | None = None

    def remember_more(self, quotes: tuple[Quote, ...]) -> str:
        """Keep further quotes for a "More sources" button; returns its key (bounded cache)."""
        self.next_more_id += 1
        key = str(self.next_more_id)
        self.more[key] = quotes
        while len(self.more) > MORE_CACHE_SIZE:
            self.more.popitem(last=False)
        return key

    def is_admin(self, user_id: int | None) -> bool:
        """Whether a user is one of ``NEWSBOT_ADMIN_IDS``."""
        return user_id is not None and user_id in self.settings.admin_ids


def state_of(bot_data: dict) -> BotState:
    """The BotState stored in the application's bot_data."""
    return bot_data["state"]
