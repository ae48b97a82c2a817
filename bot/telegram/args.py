"""Command arguments as users type them: ids, checked before anything uses them.

``str.isdigit`` accepts "²" and "٣", which ``int`` then refuses, and SQLite refuses
integers beyond 64 bits: an id is ASCII digits, an optional minus, at most 18 digits.
"""

from __future__ import annotations

import re

_ID = re.compile(r"-?[0-9]{1,18}")


def parse_id(arg: str | None, *, negative: bool = False) -> int | None:
    """The id ``arg`` spells (``negative`` allows a minus: chat ids), else None."""
    if arg is None or not _ID.fullmatch(arg):
        return None
    value = int(arg)
    return value if negative or value >= 0 else None
