"""``UpdateFuzzer``: every kind of update with its weight; ``step()`` sends one of them."""

from __future__ import annotations

import random
from collections.abc import Callable

from benchmarks.fuzzing.callbacks import CallbackUpdates
from benchmarks.fuzzing.server import FuzzBotApi
from benchmarks.fuzzing.world import ADMIN_IDS, HOT


class UpdateFuzzer(CallbackUpdates):
    """Generates and injects one random update per ``step()`` through the fake server."""

    def __init__(self, api: FuzzBotApi, rng: random.Random, ports: list[int]) -> None:
        super().__init__(api, rng, ports)
        self.actions: list[tuple[float, Callable[[], bool]]] = [
            (13, self.private_text),
            (17, self.private_command),
            (10, self.group_command),
            (5, self.group_mention),
            (4, self.group_reply_to_bot),
            (4, self.group_chatter),
            (6, self.channel_command),
            (8, self.channel_post),
            (5, self.edited_message),
            (3, self.edited_channel_post),
            (9, self.callback_forged),
            (2, self.callback_raw),
            (2, self.member_update),
            (4, self.unknown_update),
            (2, self.unsubscribed_update),
            (4, self.weird_message),
        ]

    def warm_up(self) -> None:
        """The busiest channels ask to be sources and a bot admin accepts them, so their
        posts become articles that answers quote from the start (6 updates of the run)."""
        admin = {"id": ADMIN_IDS[0], "is_bot": False, "first_name": "Admin"}
        for channel in self.channels[:HOT]:
            self._text_message("channel command", channel, "/addchannel", None)
        for channel in self.channels[:HOT]:
            text = f"/approvechannel {channel['id']}"
            self._text_message("private command", self._private_chat(admin), text, admin)

    def step(self) -> None:
        """Inject one random update (retrying with another action if one could not)."""
        weights = [w for w, _ in self.actions]
        for _ in range(10):
            action = self.rng.choices([a for _, a in self.actions], weights=weights)[0]
            if action():
                return
