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


def parse_seed(text: str, origin: str) -> ReadResult:
    """Parse one seed-format article."""
    lines = text.replace("\r\n", "\n").lstrip("\ufeff").split("\n")
    match = _DATE_LINE.match(lines[0])
    if not match:
        return ReadFailure(origin, "missing date line (' date YYYY-MM-DD ...')")
    published = parse_date(match.group(1))
    rest = lines[1:]
    while rest and not rest[0].strip():
        rest.pop(0)
    title = rest.pop(0).strip() if rest else ""
    while rest and not rest[0].strip():
        rest.pop(0)
    source = ""
    if rest and rest[0].strip().lower().startswith("by "):
        source = rest.pop(0).strip()[3:].strip()
    draft = ArticleDraft(
        title=title,
        text=clean_body("\n".join(rest)),
        published_at=published,
        source=source,
        origin=origin,
    )
    return validate(draft)
