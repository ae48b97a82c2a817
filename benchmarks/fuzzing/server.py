"""The Bot API side: the fake server that remembers what the fuzzer enqueued, and closed
loopback ports for the URLs the bot is told to fetch."""

from __future__ import annotations

import socket

from benchmarks.fuzzing.world import JSON
from tests.fake_bot_api import FakeBotApi


def closed_loopback_ports(count: int = 3) -> list[int]:
    """Ports of 127.0.0.1 that refuse connections right now (bound, released, checked)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) != 0 and port not in ports:
                ports.append(port)
    return ports


class FuzzBotApi(FakeBotApi):
    """The fake server, also remembering the update each control call enqueued and the
    offset the bot last confirmed (read in O(1), not by scanning thousands of calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.last_enqueued: JSON | None = None
        self.confirmed = 0  # every update_id up to this one has been fetched by the bot

    def _enqueue(self, kind: str, obj: JSON) -> JSON:
        update = super()._enqueue(kind, obj)  # called with the server's lock held
        self.last_enqueued = update
        return update

    def _get_updates(self, params: JSON) -> list[JSON]:
        offset = int(params.get("offset") or 0)
        if offset > 0:
            self.confirmed = max(self.confirmed, offset - 1)
        return super()._get_updates(params)
