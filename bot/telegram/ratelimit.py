"""A per-user sliding-window rate limit with a bounded memory."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class UserRateLimiter:
    """At most ``per_minute`` questions a minute per user; remembers ``max_users`` users."""

    def __init__(
        self,
        per_minute: int,
        max_users: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.max_users = max_users
        self._clock = clock
        self._seen: OrderedDict[int, deque[float]] = OrderedDict()

    def allow(self, user_id: int) -> float:
        """0 when allowed (and counted); otherwise seconds until the next allowed question."""
        if self.per_minute <= 0:
            return 0.0
        now = self._clock()
        window = self._seen.pop(user_id, None) or deque()
        while window and now - window[0] >= 60:
            window.popleft()
        wait = 0.0
        if len(window) >= self.per_minute:
            wait = 60 - (now - window[0])
        else:
            window.append(now)
        self._seen[user_id] = window  # most recent last
        while len(self._seen) > self.max_users:
            self._seen.popitem(last=False)
        return wait
