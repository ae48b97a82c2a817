"""The keyword tokenizer: lower-cased words, English stop words removed, Snowball-stemmed.

Used for BM25 indexing and queries alike, and by the answer engine for term overlap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import Stemmer

from corpus.text import fold_quotes

_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)?")

STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves s t don said says say
    also new one two many much may might must shall us week weeks this year
    """.split()
)


@lru_cache(maxsize=1)
def stemmer() -> Stemmer.Stemmer:
    """The English Snowball stemmer (one per process)."""
    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lower-cased words with possessive 's dropped ("Russia's" -> "russia")."""
    out = []
    for match in _TOKEN.finditer(fold_quotes(text).lower()):
        word = match.group()
        out.append(word[:-2] if word.endswith("'s") else word.replace("'", ""))
    return out


def tokenize(text: str) -> list[str]:
    """Stemmed content words of ``text`` (stop words and one-letter words dropped)."""
    kept = [w for w in words(text) if w not in STOPWORDS and (len(w) > 1 or w.isdigit())]
    return list(stemmer().stemWords(kept))


# tokenize()'s word pattern, but also taking typographic apostrophes inside words, so the
# quote folding can be applied per distinct word instead of to the whole text (faster).
_APOSTROPHES = "'\u2018\u2019\u201a\u201b\u2032"
WORD_PATTERN = re.compile(rf"[^\W_]+(?:[{_APOSTROPHES}][^\W_]+)?")
_FOLD_APOSTROPHES = str.maketrans({ch: "'" for ch in _APOSTROPHES})


def stems_of(raw_words: Iterable[str]) -> dict[str, str]:
    """Lower-cased raw words (``WORD_PATTERN`` matches) -> stems, for the words tokenize keeps."""
    kept: dict[str, str] = {}
    for raw in raw_words:
        word = raw
        if not raw.isalnum():  # [^\W_] is exactly isalnum(): the word has an apostrophe
            word = raw.translate(_FOLD_APOSTROPHES)
            word = word[:-2] if word.endswith("'s") else word.replace("'", "")
        if word not in STOPWORDS and (len(word) > 1 or word.isdigit()):
            kept[raw] = word
    return dict(zip(kept, stemmer().stemWords(list(kept.values())), strict=True))


def term_set(text: str) -> set[str]:
    """The distinct stemmed terms of ``text``: the same set as ``set(tokenize(text))``, faster."""
    return set(stems_of(set(WORD_PATTERN.findall(text.lower()))).values())
