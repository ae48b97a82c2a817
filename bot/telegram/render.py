"""Answers as Telegram HTML messages: pure functions, no Telegram types.

The short answer in bold, each quote in a ``<blockquote>`` followed by its source as
a link. Everything from articles is escaped.

Telegram's limit is 4096 UTF-16 code units of text *after* entity parsing (tags do not
count, ``&amp;`` is one unit, an emoji two). :func:`pack` fills messages up to it, cutting
between blocks; a block longer than a message is cut by :func:`split_html` at a paragraph,
line, sentence or word boundary, its open tags closed at the cut and reopened after it.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape, unescape

from bot.answering.models import Answer, Quote
from corpus.models import Article

MESSAGE_LIMIT = 4096  # UTF-16 code units of the text after entity parsing
MAX_QUOTE_CHARS = 1500

# The tags Telegram's HTML mode knows; anything else is text (and Telegram refuses it).
_TAG_NAMES = "b|strong|i|em|u|ins|s|strike|del|a|code|pre|blockquote|tg-spoiler|span|tg-emoji"
# One tag or one character reference. Linear: the attribute part cannot contain < or >.
_TOKEN = re.compile(
    rf"<(/?)({_TAG_NAMES})(\s[^<>]*)?>|&(?:#[0-9]{{1,7}}|#[xX][0-9a-fA-F]{{1,6}}|[a-zA-Z]{{1,16}});",
    re.IGNORECASE,
)
_HREF = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"']+))""", re.IGNORECASE)
# Where a piece may end, best first: after a blank line, a line, a sentence, a word.
_BREAKS = (
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"\n\s*"),
    re.compile(r"[.!?…][\"'”’»)\]]*\s+"),
    re.compile(r"\s+"),
)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts (characters beyond U+FFFF are two)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


@dataclass(frozen=True)
class _Token:
    """A piece of HTML: a start or end tag (no text), or one character of text."""

    raw: str
    text: str = ""  # the visible character, for text tokens
    tag: str = ""  # the lower-case tag name, for tags
    closing: bool = False


def _tokens(html: str) -> list[_Token]:
    """``html`` as tags and single visible characters (a character reference is one)."""
    tokens: list[_Token] = []
    pos = 0
    for match in _TOKEN.finditer(html):
        tokens.extend(_Token(ch, ch) for ch in html[pos : match.start()])
        raw = match.group(0)
        if match.group(2):
            tokens.append(_Token(raw, tag=match.group(2).lower(), closing=bool(match.group(1))))
        else:
            char = unescape(raw)
            # A reference that is not one character is not Telegram's: keep it as text.
            tokens.extend([_Token(raw, char)] if len(char) == 1 else (_Token(c, c) for c in raw))
        pos = match.end()
    tokens.extend(_Token(ch, ch) for ch in html[pos:])
    return tokens


def visible_text(html: str) -> str:
    """The text Telegram shows for ``html``: tags removed, character references decoded."""
    return "".join(t.text for t in _tokens(html))


def visible_length(html: str) -> int:
    """What Telegram counts against the limit: UTF-16 units of the text after parsing."""
    return utf16_len(visible_text(html))


def _break_at(text: str, start: int, end: int) -> int:
    """The best place to end a piece that must end within ``text[start:end]``.

    The best kind of break in the second half of the window; failing that, the last break
    of any kind; failing that, a hard cut at ``end`` (between characters, so never inside
    a surrogate pair or a character reference).
    """
    window = text[start:end]
    half = len(window) // 2
    last_any = 0
    for pattern in _BREAKS:
        ends = [m.end() for m in pattern.finditer(window)]
        if ends and ends[-1] > half:
            return start + ends[-1]
        last_any = max(last_any, ends[-1] if ends else 0)
    return start + last_any if last_any else end


def _cut_points(text: str, limit: int) -> list[int]:
    """Indices that cut ``text`` into pieces of at most ``limit`` UTF-16 units each."""
    units = [0]
    for ch in text:
        units.append(units[-1] + (2 if ord(ch) > 0xFFFF else 1))
    cuts: list[int] = []
    start = 0
    while units[-1] - units[start] > limit:
        end = max(bisect_right(units, units[start] + limit) - 1, start + 1)
        start = _break_at(text, start, end)
        cuts.append(start)
    return cuts


def split_plain(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Plain text as pieces of at most ``limit`` UTF-16 units (blank pieces dropped)."""
    bounds = [0, *_cut_points(text, limit), len(text)]
    pieces = (text[a:b] for a, b in zip(bounds, bounds[1:], strict=False))
    return [p for p in pieces if p.strip()]


def split_html(html: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """HTML as messages of at most ``limit`` units of visible text each, never cut in a tag.

    Tags open at a cut are closed at the end of one piece and reopened (same attributes)
    at the start of the next, so each piece is valid HTML on its own. Pieces with no
    visible text are dropped (Telegram refuses an empty message).
    """
    tokens = _tokens(html)
    visible = "".join(t.text for t in tokens)
    cuts = iter(_cut_points(visible, limit))
    next_cut = next(cuts, None)
    pieces: list[list[str]] = [[]]
    stack: list[_Token] = []  # open tags, outermost first
    pending = 0  # how many of the innermost open tags are not yet written to the piece
    index = 0  # visible characters so far
    for token in tokens:
        if token.text:
            if index == next_cut:
                written = stack[: len(stack) - pending]
                pieces[-1].extend(f"</{t.tag}>" for t in reversed(written))
                pieces.append([t.raw for t in stack])  # reopen, pending ones included
                next_cut = next(cuts, None)
            else:
                pieces[-1].extend(t.raw for t in stack[len(stack) - pending :])
            pending = 0
            pieces[-1].append(token.raw)
            index += 1
        elif not token.closing:
            stack.append(token)  # written before the next character or end tag
            pending += 1
        else:
            pieces[-1].extend(t.raw for t in stack[len(stack) - pending :])
            pending = 0
            pieces[-1].append(token.raw)
            for i in range(len(stack) - 1, -1, -1):  # a stray end tag pops nothing
                if stack[i].tag == token.tag:
                    del stack[i]
                    break
    pieces[-1].extend(t.raw for t in stack[len(stack) - pending :])
    texts = ("".join(p) for p in pieces)
    return [t for t in texts if visible_text(t).strip()]


def html_to_plain(html: str) -> str:
    """``html`` as plain text for when Telegram refuses the markup: links keep their URL
    (after the link text) and quotes their quotation marks."""
    out: list[str] = []
    links: list[tuple[str, int]] = []  # (href, where its text starts in out)
    for token in _tokens(html):
        if token.text:
            out.append(token.text)
        elif token.tag == "blockquote":
            out.append("”" if token.closing else "“")
        elif token.tag == "a" and not token.closing:
            found = _HREF.search(token.raw)
            href = next((g for g in found.groups() if g), "") if found else ""
            links.append((unescape(href), len(out)))
        elif token.tag == "a" and links:
            href, start = links.pop()
            if href and href != "".join(out[start:]).strip():
                out.append(f" ({href})")
    return "".join(out)


def _source_line(q: Quote) -> str:
    parts = [
        p for p in (q.source, q.title, q.published_at.isoformat() if q.published_at else "") if p
    ]
    label = escape(", ".join(parts))
    if q.url and q.url.startswith(("http://", "https://")):
        return f'— <a href="{escape(q.url, quote=True)}">{label}</a>'
    return f"— {label}"


def _quote_text(q: Quote) -> str:
    # A very long sentence is shown as a verbatim prefix; the ellipsis is outside it.
    if len(q.text) <= MAX_QUOTE_CHARS:
        return escape(q.text)
    return escape(q.text[:MAX_QUOTE_CHARS].rstrip()) + " …"


def quote_block(q: Quote) -> str:
    """One quote and its source, as HTML."""
    return f"<blockquote>{_quote_text(q)}</blockquote>\n{_source_line(q)}"


def answer_blocks(answer: Answer) -> list[str]:
    """The HTML blocks of an answer, in order."""
    if answer.abstained:
        return [escape(answer.not_found_text)]
    head = f"<b>{escape(answer.text)}</b>" if answer.text else f"<i>{escape(answer.headline)}</i>"
    return [head, *(quote_block(q) for q in answer.quotes)]


def pack(
    blocks: Sequence[str],
    limit: int = MESSAGE_LIMIT,
    separator: str = "\n\n",
    *,
    html: bool = True,
) -> list[str]:
    """Join blocks with ``separator`` into as few messages as fit in ``limit`` units.

    Cuts fall between blocks; a block longer than a message is split on its own
    (:func:`split_html`, or :func:`split_plain` when ``html`` is false).
    """
    measure: Callable[[str], int] = visible_length if html else utf16_len
    split: Callable[[str, int], list[str]] = split_html if html else split_plain
    gap = utf16_len(separator)
    messages: list[str] = []
    current, size = "", 0
    for block in blocks:
        length = measure(block)
        if length > limit:
            pieces = split(block, limit)
            if not pieces:
                continue
            if current:
                messages.append(current)
            messages.extend(pieces[:-1])
            current, size = pieces[-1], measure(pieces[-1])
        elif current and size + gap + length > limit:
            messages.append(current)
            current, size = block, length
        elif current:
            current, size = f"{current}{separator}{block}", size + gap + length
        else:
            current, size = block, length
    if current:
        messages.append(current)
    return messages


def render_answer(answer: Answer) -> list[str]:
    """The answer as one or more HTML messages."""
    return pack(answer_blocks(answer))


def render_quotes(quotes: tuple[Quote, ...] | list[Quote]) -> list[str]:
    """Further quotes ("more sources") as HTML messages."""
    return pack([quote_block(q) for q in quotes])


def plain_text(answer: Answer) -> list[str]:
    """The answer without markup, for when Telegram rejects the HTML."""
    if answer.abstained:
        return [answer.not_found_text]
    blocks = [answer.headline]
    for q in answer.quotes:
        where = ", ".join(str(p) for p in (q.source, q.title, q.published_at) if p)
        blocks.append(f"“{q.text}”\n— {where}" + (f"\n{q.url}" if q.url else ""))
    return pack(blocks, html=False)


def strip_html(html: str) -> str:
    """A rendered message as plain text (tags removed, entities unescaped)."""
    import re
    from html import unescape

    return unescape(re.sub(r"<[^<>]+>", "", html))


def render_push(article: Article, quote: tuple[int, int] | None, topic: str = "") -> str:
    """A pushed article: title, outlet and date, its most relevant sentence, the link."""
    lines = [f"<b>{escape(article.title)}</b>"]
    meta = ", ".join(
        p
        for p in (article.source, article.published_at.isoformat() if article.published_at else "")
        if p
    )
    if meta:
        lines.append(escape(meta))
    if quote:
        sentence = article.text[quote[0] : quote[1]]
        lines.append(f"<blockquote>{escape(sentence[:MAX_QUOTE_CHARS])}</blockquote>")
    if article.url and article.url.startswith(("http://", "https://")):
        lines.append(f'<a href="{escape(article.url, quote=True)}">Read the article</a>')
    if topic:
        lines.append(f"<i>You follow: {escape(topic[:100])}</i>")
    return "\n".join(lines)
