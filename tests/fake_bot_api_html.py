"""Telegram-style HTML ``parse_mode`` parser used by the fake Bot API server.

``parse_html(text)`` returns the plain text plus the list of ``MessageEntity`` dicts that
Telegram would compute (offsets/lengths in UTF-16 code units), or raises ``HtmlParseError``
whose message mimics Telegram's ``can't parse entities`` reasons (byte offsets are UTF-8).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

Entity = dict[str, Any]  # a Telegram MessageEntity object

__all__ = ["Entity", "HtmlParseError", "parse_html", "utf16_len", "strip_text", "auto_entities"]

# tag name -> entity type (``None``: depends on attributes / nesting)
_TAGS: dict[str, str | None] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": None,
    "code": "code",
    "pre": "pre",
    "blockquote": None,
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{1,16});")
_TAG_NAME_RE = re.compile(r"[a-zA-Z0-9-]*")
_ATTR_RE = re.compile(r"""\s*([a-zA-Z-]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>"']+))?""")


class HtmlParseError(ValueError):
    """Raised for malformed HTML; ``str(err)`` is the reason Telegram would report."""


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (how Telegram measures texts and entities)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass
class _Open:
    tag: str
    attrs: dict[str, str]
    offset: int  # UTF-16 offset in the output text
    byte_pos: int  # UTF-8 offset in the source
    language: str | None = None


class _HtmlParser:
    """Single-pass, strict scanner for the HTML subset that Telegram supports."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.pos = 0
        self.out: list[str] = []
        self.u16 = 0
        self.stack: list[_Open] = []
        self.entities: list[Entity] = []

    def byte_offset(self, pos: int) -> int:
        """UTF-8 byte offset of the character index ``pos`` in the source."""
        return len(self.src[:pos].encode("utf-8"))

    def emit(self, chars: str) -> None:
        self.out.append(chars)
        self.u16 += utf16_len(chars)

    def parse(self) -> tuple[str, list[Entity]]:
        src = self.src
        while self.pos < len(src):
            ch = src[self.pos]
            if src.startswith("</", self.pos):
                self.end_tag()
            elif ch == "<":
                self.start_tag()
            elif ch == "&":
                self.entity()
            else:
                nxt = min(
                    (i for i in (src.find("<", self.pos), src.find("&", self.pos)) if i >= 0),
                    default=len(src),
                )
                self.emit(src[self.pos : nxt])
                self.pos = nxt
        if self.stack:
            raise HtmlParseError(
                f'Can\'t find end tag corresponding to start tag "{self.stack[-1].tag}"'
            )
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def entity(self) -> None:
        match = _ENTITY_RE.match(self.src, self.pos)
        where = f"at byte offset {self.byte_offset(self.pos)}"
        if not match:
            raise HtmlParseError(f'Character "&" must be escaped as "&amp;" {where}')
        body = match.group(1)
        if body.startswith("#"):
            code = int(body[2:], 16) if body[1] in "xX" else int(body[1:])
            if not 0 < code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise HtmlParseError(f"Invalid numeric HTML entity {where}")
            self.emit(chr(code))
        elif body in _NAMED_ENTITIES:
            self.emit(_NAMED_ENTITIES[body])
        else:
            raise HtmlParseError(f'Unsupported HTML entity "&{body};" {where}')
        self.pos = match.end()

    def start_tag(self) -> None:
        begin = self.pos
        name_match = _TAG_NAME_RE.match(self.src, begin + 1)
        assert name_match is not None
        name = name_match.group(0).lower()
        if name not in _TAGS:
            raise HtmlParseError(
                f'Unsupported start tag "{name}" at byte offset {self.byte_offset(begin)}'
            )
        pos, attrs = name_match.end(), {}
        while True:
            if pos >= len(self.src):
                raise HtmlParseError(f"Unclosed start tag at byte offset {self.byte_offset(begin)}")
            if self.src[pos] == ">":
                break
            attr = _ATTR_RE.match(self.src, pos)
            if not attr or attr.end() == pos:
                raise HtmlParseError(
                    f'Expected equal sign in declaration of an attribute of the tag "{name}" '
                    f"at byte offset {self.byte_offset(begin)}"
                )
            value = attr.group(2) or ""
            if value[:1] in ("'", '"'):
                value = value[1:-1]
            attrs[attr.group(1).lower()] = _unescape_attr(value)
            pos = attr.end()
        self.check_attrs(name, attrs, begin)
        self.stack.append(_Open(name, attrs, self.u16, self.byte_offset(begin)))
        self.pos = pos + 1

    def check_attrs(self, name: str, attrs: dict[str, str], begin: int) -> None:
        where = f"at byte offset {self.byte_offset(begin)}"
        if name == "a" and not attrs.get("href"):
            raise HtmlParseError(f'Tag "a" must have attribute "href" {where}')
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise HtmlParseError(f'Tag "span" must have class "tg-spoiler" {where}')
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise HtmlParseError(f'Tag "tg-emoji" must have attribute "emoji-id" {where}')

    def end_tag(self) -> None:
        begin = self.pos
        close = self.src.find(">", begin)
        if close < 0:
            raise HtmlParseError(f"Unclosed end tag at byte offset {self.byte_offset(begin)}")
        name = self.src[begin + 2 : close].strip().lower()
        if not self.stack:
            raise HtmlParseError(f"Unexpected end tag at byte offset {self.byte_offset(begin)}")
        top = self.stack[-1]
        if name != top.tag:
            raise HtmlParseError(
                f"Unmatched end tag at byte offset {self.byte_offset(begin)}, "
                f'expected "</{top.tag}>", found "</{name}>"'
            )
        self.stack.pop()
        self.pos = close + 1
        self.close_entity(top)

    def close_entity(self, tag: _Open) -> None:
        length = self.u16 - tag.offset
        parent = self.stack[-1] if self.stack else None
        if tag.tag == "code" and parent is not None and parent.tag == "pre":
            cls = tag.attrs.get("class", "")
            if cls.startswith("language-"):
                parent.language = cls.removeprefix("language-")
            if length == self.u16 - parent.offset:
                return  # <pre><code>...</code></pre> is a single pre entity
        if length <= 0:
            return
        entity: Entity = {"type": _TAGS[tag.tag], "offset": tag.offset, "length": length}
        if tag.tag == "a":
            href = tag.attrs["href"]
            user_id = re.fullmatch(r"tg://user\?id=(\d+)", href)
            if user_id:
                entity.update(
                    type="text_mention",
                    user={"id": int(user_id.group(1)), "is_bot": False, "first_name": "User"},
                )
            else:
                entity.update(type="text_link", url=href)
        elif tag.tag == "blockquote":
            entity["type"] = "expandable_blockquote" if "expandable" in tag.attrs else "blockquote"
        elif tag.tag == "pre" and tag.language:
            entity["language"] = tag.language
        elif tag.tag == "tg-emoji":
            entity["custom_emoji_id"] = tag.attrs["emoji-id"]
        self.entities.append(entity)


def _unescape_attr(value: str) -> str:
    def repl(match: re.Match[str]) -> str:
        body = match.group(1)
        if body.startswith("#"):
            return chr(int(body[2:], 16) if body[1] in "xX" else int(body[1:]))
        return _NAMED_ENTITIES.get(body, match.group(0))

    return _ENTITY_RE.sub(repl, value)


def parse_html(text: str) -> tuple[str, list[Entity]]:
    """Parse Telegram HTML; return ``(plain_text, entities)`` or raise ``HtmlParseError``."""
    return _HtmlParser(text).parse()


def strip_text(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Trim surrounding whitespace like Telegram does, shifting/clipping entities to match."""
    stripped = text.strip()
    if not stripped:
        return "", []
    start = utf16_len(text[: len(text) - len(text.lstrip())])
    end = start + utf16_len(stripped)
    result = []
    for ent in entities:
        lo = max(ent["offset"], start)
        hi = min(ent["offset"] + ent["length"], end)
        if hi > lo:
            result.append({**ent, "offset": lo - start, "length": hi - lo})
    return stripped, result


_AUTO_RE = re.compile(
    r"(?P<bot_command>(?<![\w/])/[a-zA-Z0-9_]{1,32}(?:@[a-zA-Z0-9_]{3,32})?)"
    r"|(?P<mention>(?<!\w)@[a-zA-Z0-9_]{4,32})"
    r"|(?P<url>https?://[^\s<>\"']+)"
)


def auto_entities(text: str) -> list[Entity]:
    """Entities Telegram detects automatically in plain text: bot_command, mention, url."""
    entities: list[Entity] = []
    for match in _AUTO_RE.finditer(text):
        kind = match.lastgroup or "url"
        entities.append(
            {
                "type": kind,
                "offset": utf16_len(text[: match.start()]),
                "length": utf16_len(match.group(0)),
            }
        )
    return entities
