"""What a question asks: its type (who, when, how many, ...), focus noun, terms and names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from embeddings.tokenize import STOPWORDS, tokenize, words

_TYPES = (
    ("how_many", re.compile(r"\bhow\s+(many|much)\b", re.I)),
    ("when", re.compile(r"\b(when|what\s+(day|date|year|month|time))\b", re.I)),
    ("where", re.compile(r"\b(where|what\s+(city|country|place|town|region|state))\b", re.I)),
    ("who", re.compile(r"\b(who|whom|whose)\b", re.I)),
    ("which", re.compile(r"\b(which|what)\s+\w+", re.I)),
    ("what", re.compile(r"\bwhat\b", re.I)),
)
_FOCUS = re.compile(r"\b(?:which|what|how\s+many|how\s+much)\s+((?:[a-z-]+\s+){0,3})", re.I)
_NAME = re.compile(
    r"(?<![\w'’])[A-Z][\w'’.-]*(?:\s+(?:(?:of|de|al|bin|von|van)\s+)?[A-Z][\w'’.-]*)*"
)
_QUESTION_WORDS = {
    "Who",
    "What",
    "When",
    "Where",
    "Which",
    "How",
    "Why",
    "Whom",
    "Whose",
    "Did",
    "Does",
    "Do",
    "Is",
    "Are",
    "Was",
    "Were",
    "Has",
    "Have",
    "Can",
    "In",
    "On",
    "The",
    "A",
    "An",
    "This",
    "He",
    "She",
    "It",
    "They",
    "Its",
    "His",
    "Her",
}
_AUX_VERBS = {
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "do",
    "does",
    "did",
    "has",
    "have",
    "had",
    "will",
    "would",
    "can",
    "could",
    "should",
    "the",
    "a",
    "an",
    "of",
    "in",
    "on",
    "to",
}


@dataclass(frozen=True)
class QuestionInfo:
    """The parts of a question the answer engine uses."""

    text: str
    qtype: str  # who | when | where | how_many | which | what | other
    focus: str  # the noun after which/what/how many ("team", "officers"), or ""
    terms: tuple[str, ...]  # stemmed content words
    names: tuple[str, ...]  # capitalized names as written ("Zolotov", "Damar Hamlin")
    name_terms: tuple[str, ...]  # stemmed words of the names


def analyze(question: str) -> QuestionInfo:
    """Parse a question."""
    # The earliest question word decides: "At which airport ... when he arrived" is "which".
    found = [
        (m.start(), i, name) for i, (name, p) in enumerate(_TYPES) if (m := p.search(question))
    ]
    qtype = min(found)[2] if found else "other"
    focus = ""
    if m := _FOCUS.search(question):
        focus_words = []
        for w in m.group(1).lower().split():
            if w in _AUX_VERBS:
                break
            focus_words.append(w)
        focus = focus_words[-1] if focus_words else ""
    if qtype == "which" and not focus:
        qtype = "what"
    names = []
    for m in _NAME.finditer(question):
        tokens = [t for t in m.group().split() if t not in _QUESTION_WORDS]
        name = " ".join(tokens).strip(" .'’")
        if name and name.lower() not in STOPWORDS:
            names.append(name)
    name_terms = tuple(t for n in names for t in tokenize(n))
    terms = tuple(dict.fromkeys(tokenize(question)))
    return QuestionInfo(question, qtype, focus, terms, tuple(names), name_terms)


def focus_terms(info: QuestionInfo) -> set[str]:
    """Stemmed focus word, to find "1,200 officers" for "how many officers"."""
    return set(tokenize(info.focus)) if info.focus else set()


def plain_words(text: str) -> list[str]:
    """Lower-cased words (re-exported for the extractor)."""
    return words(text)
