"""Answers as Telegram HTML messages: pure functions, no Telegram types.

The short answer in bold, each quote in a ``<blockquote>`` followed by its source as
a link. Everything from articles is escaped. Messages are split below Telegram's
4096-character limit at block boundaries, never inside a tag.
"""

from __future__ import annotations

from html import escape

from bot.answering.models import Answer, Quote
from corpus.models import Article

MESSAGE_LIMIT = 4096
# Room for the tags: the limit counts text after entity parsing, we count raw HTML.
SAFE_LIMIT = 3900
MAX_QUOTE_CHARS = 1500


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


def pack(blocks: list[str], limit: int = SAFE_LIMIT) -> list[str]:
    """Join blocks with blank lines into as few messages as fit under ``limit``."""
    messages: list[str] = []
    current = ""
    for block in blocks:
        block = block if len(block) <= limit else block[: limit - 1] + "…"
        candidate = f"{current}\n\n{block}" if current else block
        if len(candidate) > limit and current:
            messages.append(current)
            current = block
        else:
            current = candidate
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
    return pack(blocks)


def strip_html(html: str) -> str:
    """A rendered message as plain text (tags removed, entities unescaped)."""
    import re
    from html import unescape

    return unescape(re.sub(r"<[^>]+>", "", html))


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


def render_digest(items: list[tuple[Article, tuple[int, int] | None]]) -> list[str]:
    """A daily digest: one block per article, packed into as few messages as fit."""
    header = f"<b>Your news digest: {len(items)} new article{'s' if len(items) != 1 else ''}</b>"
    return pack([header, *(render_push(article, quote) for article, quote in items)])
