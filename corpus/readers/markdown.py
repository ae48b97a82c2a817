"""Markdown with optional front matter (``---`` delimited ``key: value`` lines).

The stored text is plain: headings, emphasis and link syntax are removed, since
the text is what readers see quoted.
"""

from __future__ import annotations

import re

from corpus.models import ArticleDraft
from corpus.readers.base import ReadResult, as_authors, clean_body, parse_date, validate

_FRONT = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.DOTALL)
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*$", re.MULTILINE)
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")


def _front_matter(block: str) -> dict[str, str | list[str]]:
    meta: dict[str, str | list[str]] = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip().strip("'\"")
        if value.startswith("[") and value.endswith("]"):
            meta[key.strip().lower()] = [v.strip().strip("'\"") for v in value[1:-1].split(",")]
        else:
            meta[key.strip().lower()] = value
    return meta


def _plain(markdown: str) -> str:
    text = _HEADING.sub(r"\1", markdown)
    text = _LINK.sub(r"\1", text)
    return _EMPHASIS.sub(r"\2", text)


def parse_markdown(text: str, origin: str) -> ReadResult:
    """Parse one Markdown article."""
    text = text.replace("\r\n", "\n")
    meta: dict[str, str | list[str]] = {}
    match = _FRONT.match(text)
    if match:
        meta = _front_matter(match.group(1))
        text = text[match.end() :]
    title = str(meta.get("title") or "")
    if not title:
        heading = _HEADING.search(text)
        if heading and not text[: heading.start()].strip():
            title = heading.group(1)
            text = text[heading.end() :]
    draft = ArticleDraft(
        title=_plain(title).strip(),
        text=clean_body(_plain(text)),
        published_at=parse_date(
            meta.get("date") or meta.get("published_at") or meta.get("published")
        ),
        source=str(meta.get("source") or meta.get("outlet") or ""),
        url=str(meta.get("url") or "") or None,
        authors=as_authors(meta.get("authors") or meta.get("author")),
        language=str(meta.get("language") or "en"),
        origin=origin,
    )
    return validate(draft)
