"""Quote verification: find a model's quote as an exact span of a stored article.

A language model copies words, but rarely byte for byte: it straightens typographic
quotes (“ ” ’ become " '), turns dashes into hyphens, re-flows line breaks and wraps
the quote in quotation marks or ellipses. ``locate_quote`` forgives exactly those
differences and nothing else (it is case-sensitive and word-for-word), then maps the
match back to offsets into the original text, so ``article_text[start:end]`` is what
the article really says.
"""

from __future__ import annotations

import re

from corpus.text import fold_quotes

MIN_QUOTE_CHARS = 12
MIN_QUOTE_WORDS = 3

_WS = re.compile(r"\s+")
# What may wrap a quote without being part of it: white space, quotation marks
# (straight and typographic), ellipses and a dangling "..." of a cut-off quote.
# Anchored at the start only: the end is stripped on the reversed text (every unit
# reads the same backwards). "(...)+$" was tried from every character of a long
# inner run of spaces or quotes and rescanned it each time: quadratic.
_WRAPPING = re.compile(r"\A(?:\s|[\"'“”‘’«»„‚]|…|\.\.\.)+")


def normalize_with_map(text: str, base: int = 0) -> tuple[str, list[int]]:
    """``text`` with quotes folded and white-space runs collapsed to one space, plus a map.

    ``index[i]`` is the offset in the original text (plus ``base``) of normalized
    character ``i``. A collapsed run maps to the offset of its first character.
    """
    folded = fold_quotes(text)
    out: list[str] = []
    index: list[int] = []
    pos = 0
    for match in _WS.finditer(folded):
        out.append(folded[pos : match.start()])
        index.extend(range(base + pos, base + match.start()))
        out.append(" ")
        index.append(base + match.start())
        pos = match.end()
    out.append(folded[pos:])
    index.extend(range(base + pos, base + len(folded)))
    return "".join(out), index


def clean_quote(quoted: str) -> str:
    """The quote without wrapping marks, folded and with white space collapsed."""
    core = _WRAPPING.sub("", quoted, count=1)
    core = _WRAPPING.sub("", core[::-1], count=1)[::-1]
    return _WS.sub(" ", fold_quotes(core)).strip()


def is_specific(cleaned: str) -> bool:
    """Long enough that matching it by chance is implausible."""
    return len(cleaned) >= MIN_QUOTE_CHARS and len(cleaned.split(" ")) >= MIN_QUOTE_WORDS


def locate_quote(
    article_text: str, quoted: str, within: tuple[int, int] | None = None
) -> tuple[int, int] | None:
    """Exact ``(start, end)`` offsets of ``quoted`` in ``article_text``, or None.

    Typographic quotes, dashes and white space are normalized on both sides; the
    match is case-sensitive. Quotes shorter than 12 characters or 3 words are
    rejected. With ``within``, the span must lie inside that range of the text.
    """
    needle = clean_quote(quoted)
    if not is_specific(needle):
        return None
    lo, hi = within if within is not None else (0, len(article_text))
    lo, hi = max(0, lo), min(len(article_text), hi)
    if hi <= lo:
        return None
    haystack, index = normalize_with_map(article_text[lo:hi], base=lo)
    found = haystack.find(needle)
    if found < 0:
        return None
    return index[found], index[found + len(needle) - 1] + 1
