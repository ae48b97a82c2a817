"""Reading a language model's reply: the agreed JSON shape, found even inside code fences
or prose, and the message content of an OpenAI-compatible chat-completions response."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelQuote:
    """A quote as the model gave it, not yet verified."""

    passage: int
    text: str


@dataclass(frozen=True)
class ModelReply:
    """The model's parsed reply."""

    answer: str
    quotes: tuple[ModelQuote, ...]


class LlmError(Exception):
    """The endpoint could not be reached or answered with something unusable."""


# The white space after the opening fence is possessive: giving it back cannot help (the
# fenced text is stripped anyway), and retrying each split of a long run against the lazy
# body was quadratic on an unclosed fence.
_FENCE = re.compile(r"```(?:json|JSON)?\s*+(.*?)```", re.DOTALL)


def _json_objects(content: str) -> list[Any]:
    """Every JSON object that can be decoded from ``content``: whole, fenced, or in prose."""
    found: list[Any] = []
    candidates = [content.strip(), *(m.group(1).strip() for m in _FENCE.finditer(content))]
    for text in candidates:
        with contextlib.suppress(ValueError):
            found.append(json.loads(text))
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", content):
        try:
            obj, _ = decoder.raw_decode(content, m.start())
        except ValueError:
            continue
        found.append(obj)
    return found


def _passage_number(value: Any) -> int | None:
    """A passage number from 3, "3" or "[3]"; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().strip("[]#").strip().isdigit():
        return int(value.strip().strip("[]#").strip())
    return None


def _as_reply(obj: Any) -> ModelReply | None:
    """A ``ModelReply`` from a decoded object of the agreed shape, else None."""
    if not isinstance(obj, dict) or "answer" not in obj:
        return None
    answer = obj.get("answer")
    raw_quotes = obj.get("quotes") or []
    if not isinstance(answer, str | type(None)) or not isinstance(raw_quotes, list):
        return None
    quotes = []
    for q in raw_quotes:
        if not isinstance(q, dict) or not isinstance(q.get("text"), str):
            continue
        number = _passage_number(q.get("passage"))
        if number is not None:
            quotes.append(ModelQuote(number, q["text"]))
    return ModelReply((answer or "").strip(), tuple(quotes))


def parse_reply(content: str) -> ModelReply | None:
    """The model's JSON reply, found even inside code fences or prose; None if absent."""
    for obj in _json_objects(content):
        reply = _as_reply(obj)
        if reply is not None:
            return reply
    return None


def message_content(body: Any) -> str:
    """``choices[0].message.content`` of a chat-completions response body."""
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise LlmError(f"no message content in the response ({exc!r})") from None
    if not isinstance(content, str):
        raise LlmError(f"message content is {type(content).__name__}, not text")
    return content
