"""JSON and JSON Lines: one article per object, with liberal field names.

Accepted shapes: an object, a list of objects, or an object holding a list under
``articles``, ``items``, ``data`` or ``search_result`` (RealTime QA's search files).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from corpus.models import ArticleDraft
from corpus.readers.base import (
    ReadFailure,
    ReadResult,
    as_authors,
    clean_body,
    parse_date,
    validate,
)

_TITLE = ("title", "headline", "name")
_TEXT = ("text", "body", "content", "maintext", "article", "description")
_URL = ("url", "link", "canonical_url", "href")
_SOURCE = ("source", "outlet", "publisher", "site_name", "sitename", "domain", "source_name")
_DATE = (
    "published_at",
    "publish_date",
    "published",
    "date",
    "pubDate",
    "datePublished",
    "date_publish",
    "created_at",
)
_AUTHORS = ("authors", "author", "byline", "creator")
_CONTAINERS = ("articles", "items", "data", "search_result", "results", "entries")


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = obj.get(key)
        if value not in (None, "", []):
            return value
    return None


def _text_of(value: Any) -> str:
    if isinstance(value, dict):  # e.g. {"name": "Reuters"}
        value = value.get("name") or value.get("title") or ""
    return str(value) if value is not None else ""


def object_to_draft(obj: Any, origin: str) -> ReadResult:
    """Turn one JSON object into a draft (or a failure with the reason)."""
    if not isinstance(obj, dict):
        return ReadFailure(origin, f"expected a JSON object, got {type(obj).__name__}")
    draft = ArticleDraft(
        title=" ".join(_text_of(_first(obj, _TITLE)).split()),
        text=clean_body(_text_of(_first(obj, _TEXT))),
        published_at=parse_date(_first(obj, _DATE)),
        source=_text_of(_first(obj, _SOURCE)).strip(),
        url=_text_of(_first(obj, _URL)).strip() or None,
        authors=as_authors(_first(obj, _AUTHORS)),
        language=str(obj.get("language") or obj.get("lang") or "en"),
        origin=origin,
    )
    return validate(draft)


def _walk(value: Any, origin: str) -> Iterator[ReadResult]:
    if isinstance(value, list):
        for i, item in enumerate(value, start=1):
            yield from _walk(item, f"{origin}[{i}]")
        return
    if isinstance(value, dict):
        for key in _CONTAINERS:
            if isinstance(value.get(key), list) and _first(value, _TEXT) is None:
                yield from _walk(value[key], f"{origin}:{key}")
                return
    yield object_to_draft(value, origin)


def parse_json(text: str, origin: str) -> Iterator[ReadResult]:
    """Articles of a JSON document."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        yield ReadFailure(origin, f"invalid JSON: {exc.msg} at line {exc.lineno}")
        return
    yield from _walk(value, origin)


def parse_jsonl(text: str, origin: str) -> Iterator[ReadResult]:
    """Articles of a JSON Lines document; a broken line fails alone."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{origin}:{number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield ReadFailure(where, f"line {number}: invalid JSON ({exc.msg})")
            continue
        yield from _walk(value, where)
