"""Markdown with optional front matter (``---`` delimited ``key: value`` lines).

The stored text is plain: headings, emphasis and link syntax are removed, since
the text is what readers see quoted.
"""

from __future__ import annotations

import re

from corpus.models import ArticleDraft
from corpus.readers.base import ReadResult, as_authors, clean_body, parse_date, validate

# Every pattern here is linear in the text, even on hostile input (a file of a million
# "[" or of "*a "): no repeat is tried again from many starting points over the same
# characters. Each says below how.

# The opening line takes no blank lines (``\s*\n`` there made the lazy body retry from
# every split of a long blank run); blank lines in the block are skipped like any line
# without a colon.
_FRONT = re.compile(r"\A---[^\S\n]*\n(.*?)\n---\s*\n", re.DOTALL)
# The heading's text runs to the end of its line; closing hashes and trailing blanks
# are cut in Python (``_heading_text``): a lazy group before ``[ \t]*#*[ \t]*$`` is cubic on
# a line of spaces.
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*)$", re.MULTILINE)
# Link text holds no brackets and the destination no parentheses except balanced pairs
# one level deep (as in Wikipedia addresses), so a scan stops at the next "[" or "(":
# a run of "[" or of "](" is read once.
_LINK = re.compile(r"!?\[([^\[\]]*+)\]\((?:[^()]++|\([^()]*+\))*+\)")
# Emphasis marks by their first character, tried in this order at one position: "**"
# before "*".
_MARKS = {"*": ("**", "*"), "_": ("__", "_"), "`": ("`",)}
_MARK_CHAR = re.compile(r"[*_`]")
# A closing mark follows a non-space character.
_CLOSERS = {
    mark: re.compile(r"(?<=\S)" + re.escape(mark)) for marks in _MARKS.values() for mark in marks
}
_NEWLINE = re.compile(r"\n")


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


def _heading_text(line_rest: str) -> str:
    """A heading's text without its optional closing hashes and the blanks around them."""
    return line_rest.rstrip(" \t").rstrip("#").rstrip(" \t")


class _NextMatch:
    """Where ``pattern`` next matches in ``text``, for positions that only grow.

    A search resumes only once the last answer lies behind the asked position, so all
    questions together scan the text about once: asking a regex afresh from every
    candidate start is what makes emphasis quadratic on a line of "*a *a *a ...".
    """

    def __init__(self, pattern: re.Pattern[str], text: str) -> None:
        self._pattern = pattern
        self._text = text
        self._searched_from = len(text) + 1  # nothing known yet
        self._found: int | None = None

    def at_or_after(self, pos: int) -> int | None:
        """Start of the first match at or after ``pos``, or None."""
        known = self._searched_from <= pos and (self._found is None or self._found >= pos)
        if not known:
            match = self._pattern.search(self._text, pos)
            self._searched_from, self._found = pos, (match.start() if match else None)
        return self._found


def _emphasis_at(
    text: str, start: int, closers: dict[str, _NextMatch], line_end: int | None
) -> tuple[int, int, int] | None:
    """(inner start, inner end, end) of the emphasis opening at ``start``, if any.

    An opening mark is followed by a non-space; the inner text is the shortest that ends,
    on the same line, just before the same mark following a non-space.
    """
    for mark in _MARKS[text[start]]:
        inner = start + len(mark)
        if not text.startswith(mark, start) or inner >= len(text) or text[inner].isspace():
            continue
        close = closers[mark].at_or_after(inner + 1)
        if close is not None and (line_end is None or close < line_end):
            return inner, close, close + len(mark)
    return None


def _strip_emphasis(text: str) -> str:
    """``**bold**``, ``__bold__``, ``*it*``, ``_it_`` and ```code``` become their inner text.

    Scanned left to right like ``re.sub`` with one pattern would, but each closing mark
    and line end is looked up through a ``_NextMatch``, keeping it linear.
    """
    closers = {mark: _NextMatch(pattern, text) for mark, pattern in _CLOSERS.items()}
    line_ends = _NextMatch(_NEWLINE, text)
    pieces: list[str] = []
    kept = pos = 0
    while (found := _MARK_CHAR.search(text, pos)) is not None:
        start = found.start()
        # The character after an opening mark is never a newline, so the line end seen
        # from start + 1 is the one that bounds the inner text of every mark.
        span = _emphasis_at(text, start, closers, line_ends.at_or_after(start + 1))
        if span is None:
            pos = start + 1
            continue
        inner, close, end = span
        pieces += (text[kept:start], text[inner:close])
        kept = pos = end
    pieces.append(text[kept:])
    return "".join(pieces)


def _plain(markdown: str) -> str:
    text = _HEADING.sub(lambda m: _heading_text(m.group(1)), markdown)
    text = _LINK.sub(r"\1", text)
    return _strip_emphasis(text)


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
            title = _heading_text(heading.group(1))
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
