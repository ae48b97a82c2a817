"""The seed format: a ' date YYYY-MM-DD ...' line, the title, an optional 'By ...' byline,
then paragraphs separated by blank lines."""

from __future__ import annotations

import re

from corpus.models import ArticleDraft
from corpus.readers.base import ReadFailure, ReadResult, clean_body, parse_date, validate

_DATE_LINE = re.compile(r"^\s*date\s+(\d{4}-\d{2}-\d{2})\b")


def looks_like_seed(text: str) -> bool:
    """Whether the text starts with the seed format's date line."""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    return bool(_DATE_LINE.match(first))


def _skip_blank(lines: list[str], at: int) -> int:
    """Index of the first line from ``at`` on that is not blank (``len(lines)`` if none)."""
    while at < len(lines) and not lines[at].strip():
        at += 1
    return at


def parse_seed(text: str, origin: str) -> ReadResult:
    """Parse one seed-format article."""
    lines = text.replace("\r\n", "\n").lstrip("\ufeff").split("\n")
    match = _DATE_LINE.match(lines[0])
    if not match:
        return ReadFailure(origin, "missing date line (' date YYYY-MM-DD ...')")
    published = parse_date(match.group(1))
    # Walk an index instead of popping the list's head: pop(0) moves every later
    # line, which made a file of a million blank lines take minutes.
    at = _skip_blank(lines, 1)
    title = lines[at].strip() if at < len(lines) else ""
    at = _skip_blank(lines, at + 1)
    source = ""
    if at < len(lines) and lines[at].strip().lower().startswith("by "):
        source = lines[at].strip()[3:].strip()
        at += 1
    draft = ArticleDraft(
        title=title,
        text=clean_body("\n".join(lines[at:])),
        published_at=published,
        source=source,
        origin=origin,
    )
    return validate(draft)
