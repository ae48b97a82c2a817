"""Typed access to what the application keeps in ``bot_data``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.settings import Settings
from bot.telegram.group_admins import GroupAdmins
from bot.telegram.ratelimit import FloodGate, UserRateLimiter

if TYPE_CHECKING:
    from bot.answering.engine import AnswerEngine
    from bot.services import Services
    from bot.telegram.delivery import DeliverySender
    from embeddings.index_updater import IndexUpdater


@dataclass
class BotState:
    """The bot's long-lived state: settings, services, limits, caches."""

    settings: Settings
    limiter: UserRateLimiter  # questions per sender
    services: Services | None = None
    engine: AnswerEngine | None = None
    # every update that would be answered, per chat and per sender (no limits unless given:
    # build_application makes the real one from the settings)
    gate: FloodGate = field(default_factory=lambda: FloodGate(0, 0))
    admins: GroupAdmins = field(default_factory=GroupAdmins)  # group admin ids, cached
    reindexing: bool = False
    polling: bool = False
    sender: DeliverySender | None = None
    indexer: IndexUpdater | None = None
    notify_admins: Callable[[str], Awaitable[None]] | None = None

    def request_index(self, *, rebuild: bool = False) -> None:
        """Ask the background indexer to catch up with the store (never waits)."""
        if self.indexer is not None:
            self.indexer.request(rebuild=rebuild)

    def is_admin(self, user_id: int | None) -> bool:
        """Whether a user is one of ``NEWSBOT_ADMIN_IDS``."""
        return user_id is not None and user_id in self.settings.admin_ids


def state_of(bot_data: dict) -> BotState:
    """The BotState stored in the application's bot_data."""
    return bot_data["state"]
