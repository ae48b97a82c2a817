"""Text utilities: normalization, content hashes and sentence spans with exact offsets.

Sentence splitting is rule-based and conservative: a boundary needs end punctuation
(optionally followed by closing quotes or brackets), white space, and then something
that can start a sentence. Abbreviations ("U.S.", "Gen.", "Brig."), initials ("J. R.")
and decimals ("3.5") therefore do not split. Paragraph breaks always do.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator

_WS = re.compile(r"\s+")
_WORD = re.compile(r"\S+")

# Typographic quotes and dashes folded to ASCII, so "Russia’s" matches "Russia's".
_QUOTE_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u00a0": " ",
    }
)

ABBREVIATIONS = frozenset(
    """
    mr mrs ms dr prof gen brig col lt maj capt cmdr adm sgt cpl pvt gov sen rep rev hon
    pres supt insp det st jr sr inc corp ltd co bros dept est fig no nos vol vs etc al
    approx apr aug dec feb jan jul jun mar nov oct sep sept mt ft ave blvd rd
    """.split()
)

# A sentence boundary is a run of end punctuation, then what may follow it. The two are
# matched separately, the run first, because one pattern ``[.!?…]+[...]*(?=...)`` is tried
# again at every character of a long punctuation run and rescans the run each time:
# quadratic (20,000 dots took seconds). Each run is now seen once, and the possessive
# quantifiers below never give back what they matched (giving back could never help: the
# next character would be punctuation, a closer or white space again).
_END_PUNCT = re.compile(r"[.!?…]+")
_AFTER_END = re.compile(
    r"""[\"'”’»)\]]*+         # closing quotes or brackets
        (?=\s++[\"'“‘«(\[]*+[A-Z0-9À-ÖØ-ÞА-ЯЁ])  # white space, then a sentence start
    """,
    re.VERBOSE,
)
_PARAGRAPH = re.compile(r"\n\s*\n")


_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_unicode(text: str) -> str:
    """``text`` with lone surrogates (which JSON's ``\\udXXX`` escapes can smuggle in, and
    which neither UTF-8 nor SQLite accept) replaced by U+FFFD."""
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def fold_quotes(text: str) -> str:
    """Replace typographic quotes, dashes and no-break spaces with ASCII ones.

    The mapping is one character to one character, so offsets are preserved.
    """
    return text.translate(_QUOTE_FOLD)


def normalize_for_hash(text: str) -> str:
    """Normalize text for duplicate detection: NFKC, folded quotes, collapsed space, lower case."""
    folded = fold_quotes(unicodedata.normalize("NFKC", text))
    return _WS.sub(" ", folded).strip().lower()


def content_hash(*parts: str) -> str:
    """A stable SHA-256 hex digest of the normalized parts."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(normalize_for_hash(part).encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()


def word_count(text: str) -> int:
    """Number of white-space separated words."""
    return len(_WORD.findall(text))


def word_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Offsets of the white-space separated words of ``text[start:end]``."""
    end = len(text) if end is None else end
    return [(m.start() + start, m.end() + start) for m in _WORD.finditer(text[start:end])]


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the period at ``dot`` ends an abbreviation or an initial, not a sentence."""
    if text[dot] != ".":
        return False
    i = dot
    while i > 0 and not text[i - 1].isspace() and text[i - 1] not in "\"'“‘«([":
        i -= 1
    token = text[i:dot]
    if not token:
        return False
    if len(token) == 1 and token.isalpha():
        return True  # an initial: "J. R. Smith"
    if "." in token:
        return True  # "U.S", "a.m", "Ph.D"
    return token.lower() in ABBREVIATIONS


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` into sentences; returns (start, end) offsets into ``text``.

    Spans carry no leading or trailing white space and are never empty.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    para_start = start
    for para in [*_PARAGRAPH.finditer(text, start, end), None]:
        para_end = para.start() if para else end
        spans.extend(_paragraph_sentences(text, para_start, para_end))
        if para:
            para_start = para.end()
    return spans


def _boundaries(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each sentence boundary in ``text[start:end]``: end punctuation,
    closers, with white space and a sentence start after them. Linear in the length."""
    for run in _END_PUNCT.finditer(text, start, end):
        after = _AFTER_END.match(text, run.end(), end)
        if after is not None:
            yield run.start(), after.end()


def _paragraph_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    sent_start = start
    for mark_start, mark_end in _boundaries(text, start, end):
        if mark_end - mark_start == 1 and _is_abbreviation(text, mark_start):
            continue
        s, e = _trim(text, sent_start, mark_end)
        if s < e:
            spans.append((s, e))
        sent_start = mark_end
    s, e = _trim(text, sent_start, end)
    if s < e:
        spans.append((s, e))
    return spans
