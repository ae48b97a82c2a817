"""Named crash points for fault tests: ``kill -9`` at an exact step, without sleeps.

The composition root arms one point from ``NEWSBOT_CRASH_AT`` (tests only); when the
code reaches it, the process kills itself with SIGKILL, as the kernel's OOM killer or a
power cut would, so no ``finally`` block, flush or shutdown hook runs. Unarmed, a crash
point costs one comparison.

Points: ``ingest.after_article`` (an article and its route row committed, nothing
indexed), ``poll.after_entry`` (one feed entry committed, the rest of the feed not),
``route.after_article`` (one article's pushes queued, the next not routed),
``delivery.after_send`` (Telegram took a push, it is not yet marked sent),
``digest.after_part`` (the first part of a digest went out, the rest not).
"""

from __future__ import annotations

import os
import signal

_armed: str = ""
_countdown: int = 0


def arm(point: str) -> None:
    """Crash at ``point`` (``name`` or ``name#N``: the N-th time it is reached)."""
    global _armed, _countdown
    name, _, nth = point.partition("#")
    _armed, _countdown = name, int(nth or 1)


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when ``name`` is the armed point."""
    global _countdown
    if _armed and name == _armed:
        _countdown -= 1
        if _countdown <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
