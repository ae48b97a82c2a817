"""Shared pieces of the readers: failures, safe file loading, field coercion."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from dateutil import parser as date_parser

from corpus.models import ArticleDraft

DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class ReadFailure:
    """An input that could not become an article, with a one-line reason."""

    origin: str
    reason: str


ReadResult = ArticleDraft | ReadFailure


class UnreadableFile(Exception):
    """A file that cannot be read as text; ``str()`` is the reason shown to the user."""


def _size(n: int) -> str:
    return (
        f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} bytes"
    )


def read_bytes(path: Path, max_bytes: int) -> bytes:
    """Read a file, refusing empty, oversized and binary ones with a clear reason."""
    size = path.stat().st_size
    if size == 0:
        raise UnreadableFile("empty file")
    if size > max_bytes:
        raise UnreadableFile(f"file too large ({_size(size)}; the limit is {_size(max_bytes)})")
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise UnreadableFile("binary file, not text")
    return data


def decode_utf8(data: bytes) -> str:
    """Decode UTF-8 (with or without BOM), with a clear reason when it is not."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    if not text.strip():
        raise UnreadableFile("empty file")
    return text


def read_text(path: Path, max_bytes: int) -> str:
    """Read a UTF-8 text file with the checks of :func:`read_bytes` and :func:`decode_utf8`."""
    return decode_utf8(read_bytes(path, max_bytes))


# No date is written in more characters than this; dateutil takes minutes on a megabyte
# of digits or spaces, so longer strings are not given to it.
MAX_DATE_CHARS = 100


def parse_date(value: Any) -> date | None:
    """Be liberal: ISO dates and datetimes, "2023/01/05", RFC 2822, epoch seconds.

    None when there is no value or it is not a date a calendar can hold (1e300, NaN,
    -1e12 seconds, True, a thousand-character string): callers report it, never crash.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, bool):
        return None  # a bool is an int to Python, but never a timestamp
    if isinstance(value, int | float):
        return _date_from_epoch(value)
    text = str(value)
    if len(text) > MAX_DATE_CHARS:
        return None
    try:
        return date_parser.parse(text, fuzzy=False).date()
    except (ValueError, OverflowError):
        return None


def _date_from_epoch(seconds: float) -> date | None:
    """The local date ``seconds`` after 1970, or None when no calendar date is that far."""
    try:
        return datetime.fromtimestamp(seconds).date()
    except (OverflowError, ValueError, OSError):  # too large, NaN, before year 1, ...
        return None


_PARA_SPLIT = re.compile(r"\n\s*\n")
_INLINE_WS = re.compile(r"[ \t\r\f\v]+")


def clean_body(text: str) -> str:
    """Normalize a body for display: paragraphs separated by one blank line.

    Single line breaks inside a paragraph are kept (poems, lists); runs of spaces
    become one space; surrounding white space goes.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = []
    for para in _PARA_SPLIT.split(text):
        lines = [_INLINE_WS.sub(" ", line).strip() for line in para.split("\n")]
        joined = "\n".join(line for line in lines if line)
        if joined:
            paragraphs.append(joined)
    return "\n\n".join(paragraphs)


def as_authors(value: Any) -> tuple[str, ...]:
    """Authors from a list, a dict with names, or a comma/"and" separated string."""
    if not value:
        return ()
    if isinstance(value, str):
        value = value.removeprefix("By ").removeprefix("by ")
        parts = re.split(r",|;|\band\b|&", value)
        return tuple(p.strip() for p in parts if p.strip())
    if isinstance(value, dict):
        return as_authors(value.get("name"))
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value:
            out.extend(as_authors(item))
        return tuple(out)
    return ()


def validate(draft: ArticleDraft) -> ReadResult:
    """A draft with the fields every article needs, or a failure saying what is missing."""
    missing = [
        name
        for name, ok in (
            ("title", bool(draft.title.strip())),
            ("date", draft.published_at is not None),
            ("text", bool(draft.text.strip())),
        )
        if not ok
    ]
    if missing:
        return ReadFailure(draft.origin, "missing " + " and ".join(missing))
    return draft
