"""The keyword tokenizer: lower-cased words, English stop words removed, Snowball-stemmed.

Used for BM25 indexing and queries alike, and by the answer engine for term overlap.
"""

from __future__ import annotations

import re
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
