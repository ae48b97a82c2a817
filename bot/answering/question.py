"""What a question asks: its type (who, when, how many, ...), focus noun, terms and names.

Pure: the engine parses questions in worker threads, several at once (``engine.understand``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from embeddings.tokenize import STOPWORDS, tokenize

_TYPES = (
    ("how_many", re.compile(r"\bhow\s+(many|much|old|long|far|tall|big|large|high)\b", re.I)),
    ("when", re.compile(r"\b(when|what\s+(day|date|year|month|time))\b", re.I)),
    ("where", re.compile(r"\b(where|what\s+(city|country|place|town|region|state))\b", re.I)),
    ("who", re.compile(r"\b(who|whom|whose)\b", re.I)),
    ("which", re.compile(r"\b(which|what)\s+\w+", re.I)),
    ("what", re.compile(r"\bwhat\b", re.I)),
)
_FOCUS = re.compile(r"\b(?:which|what|how\s+many|how\s+much)\b", re.I)
_NAME = re.compile(
    r"(?<![\w'’])[A-Z][\w'’.-]*(?:\s+(?:(?:of|de|al|bin|von|van)\s+)?[A-Z][\w'’.-]*)*"
)
_QUESTION_WORDS = set(
    "Who What When Where Which How Why Whom Whose Did Does Do Is Are Was Were Has Have Can "
    "In On The A An This He She It They Its His Her".split()
)
# Words that end the focus phrase: "which airline announced ..." -> "airline".
_FOCUS_STOP = set(
    """is are was were be been do does did has have had will would can could should may might
    the a an of in on to at by for from with as that this these those it he she they its his her
    their there who which what fell won made became left took got went ran hit saw gave lost
    said says say sold bought now recently currently just also still already""".split()
)
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


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
    asking = _asking_sentence(question)
    # The earliest question word decides: "At which airport ... when he arrived" is "which".
    found = [(m.start(), i, name) for i, (name, p) in enumerate(_TYPES) if (m := p.search(asking))]
    qtype = min(found)[2] if found else "other"
    focus = ""
    if m := _FOCUS.search(asking):
        focus_words: list[str] = []
        for w in re.findall(r"[\w-]+", asking[m.end() :].lower())[:4]:
            if w in _FOCUS_STOP or (focus_words and w.endswith(("ed", "ly"))):
                break
            focus_words.append(w)
        focus = focus_words[-1] if focus_words else ""
    if qtype == "which" and not focus:
        qtype = "what"
    names = []
    for m in _NAME.finditer(question):
        if _sentence_initial_word(question, m):
            continue
        tokens = [t for t in m.group().split() if t not in _QUESTION_WORDS]
        name = " ".join(tokens).strip(" .'’")
        if name and name.lower() not in STOPWORDS:
            names.append(name)
    name_terms = tuple(t for n in names for t in tokenize(n))
    terms = tuple(dict.fromkeys(tokenize(question)))
    return QuestionInfo(question, qtype, focus, terms, tuple(names), name_terms)


def _sentence_initial_word(text: str, m: re.Match[str]) -> bool:
    """A lone capitalized word opening a sentence ("Huge crowds ...") is not a name."""
    # Look only at the characters next to the match: slicing the text before and after
    # it for every name made a long question of many names quadratic.
    before = m.start()
    while before > 0 and text[before - 1].isspace():
        before -= 1
    at_start = m.start() == 0 or (before > 0 and text[before - 1] in ".?!")
    after = m.end()
    while after < len(text) and text[after].isspace():
        after += 1
    following = text[after : after + 1]
    return at_start and " " not in m.group() and following.islower()


def _asking_sentence(question: str) -> str:
    """The sentence that asks: "Hamlin collapsed this week. He plays for which team?" -> the 2nd."""
    sentences = [x for x in _SENTENCE_END.split(question.strip()) if x]
    asking = [x for x in sentences if any(p.search(x) for _, p in _TYPES)]
    return asking[-1] if asking else question


def focus_terms(info: QuestionInfo) -> set[str]:
    """Stemmed focus word, to find "1,200 officers" for "how many officers"."""
    return set(tokenize(info.focus)) if info.focus else set()
