"""JSON and JSON Lines: one article per object, with liberal field names.

Accepted shapes: an object, a list of objects, or an object holding a list under
``articles``, ``items``, ``data`` or ``search_result`` (RealTime QA's search files).

Hostile input fails alone: a file that is not JSON, nests too deeply or holds numbers
Python cannot convert is one failure; a record with an impossible date or a value that
cannot be read is one failure, and the records around it still load.
"""

from __future__ import annotations

import json
import logging
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
# Lists (and containers) nested deeper than this hold no articles of any real shape;
# the limit also keeps the walk far from Python's recursion limit.
MAX_NESTING = 32

log = logging.getLogger(__name__)


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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A field value as a short piece of a one-line failure reason."""
    if isinstance(value, str | int | float):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return f"a JSON {type(value).__name__}"


def object_to_draft(obj: Any, origin: str) -> ReadResult:
    """Turn one JSON object into a draft (or a failure with the reason)."""
    if not isinstance(obj, dict):
        return ReadFailure(origin, f"expected a JSON object, got {type(obj).__name__}")
    raw_date = _first(obj, _DATE)
    published = parse_date(raw_date)
    if published is None and _is_number(raw_date):
        # A text that is no date counts as a missing date; a number always meant one.
        return ReadFailure(origin, f"date out of range: {_shown(raw_date)} seconds")
    draft = ArticleDraft(
        title=" ".join(_text_of(_first(obj, _TITLE)).split()),
        text=clean_body(_text_of(_first(obj, _TEXT))),
        published_at=published,
        source=_text_of(_first(obj, _SOURCE)).strip(),
        url=_text_of(_first(obj, _URL)).strip() or None,
        authors=as_authors(_first(obj, _AUTHORS)),
        language=str(obj.get("language") or obj.get("lang") or "en"),
        origin=origin,
    )
    return validate(draft)


def _record(value: Any, origin: str) -> ReadResult:
    """One record as a draft or a failure; whatever it holds, it never raises."""
    try:
        return object_to_draft(value, origin)
    except Exception as exc:  # one odd record (say, a title nested 900 lists deep) fails alone
        log.warning("could not read the record %s", origin, exc_info=True)
        return ReadFailure(origin, f"could not read this record ({type(exc).__name__})")


def _walk(value: Any, origin: str, depth: int = 0) -> Iterator[ReadResult]:
    if depth > MAX_NESTING:
        yield ReadFailure(origin, f"articles nested more than {MAX_NESTING} levels deep")
        return
    if isinstance(value, list):
        for i, item in enumerate(value, start=1):
            yield from _walk(item, f"{origin}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key in _CONTAINERS:
            if isinstance(value.get(key), list) and _first(value, _TEXT) is None:
                yield from _walk(value[key], f"{origin}:{key}", depth + 1)
                return
    yield _record(value, origin)


def _decode(text: str) -> Any:
    """``json.loads``, with every way it refuses a document as a ``ValueError``.

    Nesting deeper than the interpreter's recursion limit raises ``RecursionError`` and
    an integer of more than 4,300 digits a plain ``ValueError``; neither is a
    ``JSONDecodeError``.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _invalid(exc: ValueError) -> str:
    """Why ``_decode`` refused a document, in a few words."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno}"
    return str(exc).split(":", 1)[0]  # "Exceeds the limit (4300 digits) ...", "nested ..."


def parse_json(text: str, origin: str) -> Iterator[ReadResult]:
    """Articles of a JSON document."""
    try:
        value = _decode(text)
    except ValueError as exc:
        yield ReadFailure(origin, f"invalid JSON: {_invalid(exc)}")
        return
    yield from _walk(value, origin)


def parse_jsonl(text: str, origin: str) -> Iterator[ReadResult]:
    """Articles of a JSON Lines document; a broken line fails alone.

    Lines end at a line feed only (a carriage return before it is JSON white space).
    ``str.splitlines`` also cuts at U+2028, U+2029 and U+0085, which JSON strings may
    hold as they are, and at form feeds, which then shifted every later line number.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{origin}:{number}"
        try:
            value = _decode(line)
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else _invalid(exc)
            yield ReadFailure(where, f"line {number}: invalid JSON ({reason})")
            continue
        yield from _walk(value, where)
