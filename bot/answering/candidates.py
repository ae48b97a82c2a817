"""Candidate answer spans in a sentence: names, numbers and dates, typed by heuristics.

No NER model ships offline, so names are runs of capitalized tokens (with titles such
as "Brig. Gen." and connectors such as "of"), typed person / organisation / place by
the words in and around them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

PERSON_TITLES = {
    "gen",
    "general",
    "brig",
    "brigadier",
    "col",
    "colonel",
    "maj",
    "major",
    "lt",
    "lieutenant",
    "capt",
    "captain",
    "adm",
    "admiral",
    "sgt",
    "dr",
    "mr",
    "mrs",
    "ms",
    "prof",
    "president",
    "minister",
    "prime",
    "pope",
    "king",
    "queen",
    "prince",
    "princess",
    "sen",
    "senator",
    "rep",
    "gov",
    "governor",
    "secretary",
    "judge",
    "justice",
    "chancellor",
    "sir",
    "dame",
    "coach",
    "ceo",
    "chairman",
    "director",
    "first",
    "deputy",
}
ORG_WORDS = {
    "ministry",
    "guard",
    "council",
    "agency",
    "police",
    "group",
    "bank",
    "university",
    "fc",
    "club",
    "party",
    "committee",
    "court",
    "airport",
    "museum",
    "media",
    "wire",
    "news",
    "corporation",
    "company",
    "inc",
    "ltd",
    "lines",
    "logistics",
    "service",
    "services",
    "department",
    "office",
    "commission",
    "union",
    "association",
    "federation",
    "army",
    "navy",
    "force",
    "forces",
    "command",
    "league",
    "institute",
    "foundation",
    "house",
    "senate",
    "congress",
    "parliament",
    "government",
    "network",
    "times",
    "post",
    "corp",
    "co",
    "airlines",
    "authority",
    "administration",
    "bureau",
    "board",
    "school",
    "hospital",
    "center",
    "centre",
}
NOT_NAMES = {
    "the",
    "a",
    "an",
    "this",
    "that",
    "these",
    "those",
    "it",
    "he",
    "she",
    "they",
    "we",
    "i",
    "his",
    "her",
    "their",
    "its",
    "our",
    "in",
    "on",
    "at",
    "but",
    "and",
    "or",
    "as",
    "after",
    "before",
    "also",
    "according",
    "speaking",
    "when",
    "while",
    "if",
    "for",
    "with",
    "by",
    "from",
    "to",
    "of",
    "last",
    "next",
    "earlier",
    "later",
    "meanwhile",
    "however",
    "there",
    "here",
    "some",
    "many",
    "most",
    "officials",
    "one",
    "two",
    "three",
    "four",
    "five",
}
WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
MONTH_NAMES = {
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
}
PLACE_PREPOSITIONS = {"in", "at", "to", "from", "near", "outside", "across"}
# Words around a name that say it is a person's: "actress Michelle Yeoh", "Yeoh said".
PERSON_BEFORE = set(
    """chief minister head actress actor singer rapper star player coach president senator
    leader ceo founder director author host comedian musician artist judge spokesman
    spokeswoman spokesperson secretary governor mayor officer prosecutor lawyer attorney
    chairman chairwoman speaker rep. sen. gov. dr. mr. mrs. ms. queen king prince
    princess""".split()
)
PERSON_AFTER = {"said", "says", "told", "wrote", "added", "who", "whose"}

_TOKEN = r"[A-Z][\w\-]*\.?|[A-Z]\."
# Names may hold numbers after their first word ("Three 6 Mafia", "Apollo 11"); "and"
# joins two names ("Harry Styles and Beyoncé"), so it is no connector.
_NAME = re.compile(
    rf"(?:{_TOKEN})(?:[ \u00a0](?:(?:of|de|del|da|al|bin|van|von|the|&)[ \u00a0])?"
    rf"(?:{_TOKEN}|\d+\b(?=[ \u00a0][A-Z])))*"
)
# A short quoted capitalized phrase is a title: “Laverne & Shirley”, "Woke, Inc.".
_QUOTED = re.compile(r"[“\"‘]([A-Z][^“”\"‘’\n]{1,60}?)[”\"’]")
_POSSESSIVE = re.compile(r"['’]s\b")
_NUMBER = re.compile(
    r"(?:[$€£]\s?)?\d[\d,]*(?:\.\d+)?(?:\s?(?:million|billion|trillion|thousand|percent|%))?"
    r"|\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|hundreds?|"
    r"thousands?)\b",
    re.IGNORECASE,
)
_DATE = re.compile(
    r"\b(?:(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday),?\s+)?"
    r"(?:(?:January|February|March|April|May|June|July|August|September|October|November|December)"
    r"\s+\d{1,2}(?:st|nd|rd|th)?(?:,?\s+\d{4})?|\d{1,2}\s+(?:January|February|March|April|May|"
    r"June|July|August|September|October|November|December)(?:\s+\d{4})?)"
    r"|\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b"
    r"|\b(?:in|since|by|until)\s+(?:19|20)\d{2}\b"
)


@dataclass(frozen=True)
class Candidate:
    """A typed span ``text[start:end]`` of an article."""

    start: int
    end: int
    text: str
    kind: str  # person | org | place | name | number | date


def _clean_name(text: str, start: int) -> list[tuple[int, int]]:
    """Split a capitalized run at possessives ("Russia’s National Guard") and trim."""
    spans = []
    pos = 0
    for m in _POSSESSIVE.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    out = []
    for s, e in spans:
        part = text[s:e]
        stripped = part.strip(" .,")
        if not stripped:
            continue
        offset = part.index(stripped)
        words = stripped.split()
        while words and words[0].lower().strip(".") in NOT_NAMES:
            offset += len(words[0]) + 1
            words = words[1:]
        # A period after a full word ends a sentence, not a name ("Lavrentyev. It").
        for i, word in enumerate(words):
            bare = word[:-1]
            if word.endswith(".") and len(bare) > 1 and bare.lower() not in PERSON_TITLES:
                words = words[: i + 1]
                break
        if not words:
            continue
        stripped = " ".join(words)
        # A trailing period is kept only for an abbreviation such as "Jr."
        if stripped.endswith(".") and len(words[-1]) > 3:
            stripped = stripped[:-1]
        out.append((start + s + offset, start + s + offset + len(stripped)))
    return out


def _name_kind(article_text: str, start: int, end: int) -> str:
    words = [w.strip(".").lower() for w in article_text[start:end].split()]
    if any(w in ORG_WORDS for w in words):
        return "org"
    before = article_text[max(0, start - 30) : start].lower().split()
    after = article_text[end : end + 20].lower().replace(",", " ").split()
    if (
        words[0] in PERSON_TITLES
        or (before and before[-1] in PERSON_BEFORE)
        or (len(words) >= 2 and after and after[0] in PERSON_AFTER)
    ):
        return "person"
    if before and before[-1] in PLACE_PREPOSITIONS:
        return "place"
    if len(words) >= 2 and _looks_like_person(article_text, article_text[start:end]):
        return "person"
    return "name"


def _looks_like_person(article_text: str, name: str) -> bool:
    """A middle initial ("Irina S. Volkova"), or the surname used alone elsewhere."""
    tokens = name.split()
    if any(re.fullmatch(r"[A-Z]\.", t) for t in tokens[1:-1]):
        return True
    return _standalone_counts(article_text).get(tokens[-1].rstrip("."), 0) >= 2


def candidates(article_text: str, start: int, end: int) -> list[Candidate]:
    """Typed candidate spans in ``article_text[start:end]``."""
    out: list[Candidate] = []
    segment = article_text[start:end]
    taken: list[tuple[int, int]] = []
    for m in _DATE.finditer(segment):
        s, e = start + m.start(), start + m.end()
        text = article_text[s:e]
        for prefix in ("in ", "since ", "by ", "until "):
            if text.startswith(prefix):
                s += len(prefix)
        out.append(Candidate(s, e, article_text[s:e], "date"))
        taken.append((s, e))
    for m in _QUOTED.finditer(segment):
        s, e = start + m.start(1), start + m.end(1)
        out.append(Candidate(s, e, article_text[s:e], "title"))
        taken.append((s, e))
    for m in _NUMBER.finditer(segment):
        s, e = start + m.start(), start + m.end()
        if any(s < te and ts < e for ts, te in taken):
            continue
        out.append(Candidate(s, e, article_text[s:e], "number"))
    for m in _NAME.finditer(segment):
        for s, e in _clean_name(m.group(), start + m.start()):
            if any(s < te and ts < e for ts, te in taken):
                continue
            lowered = article_text[s:e].lower().strip(".")
            if lowered in WEEKDAYS or lowered in MONTH_NAMES or lowered in NOT_NAMES:
                continue
            kind = _name_kind(article_text, s, e)
            if kind == "name" and " " not in article_text[s:e]:
                # A lone surname ("Radan") takes the kind of its fullest form in the article.
                full = expand_name(article_text, article_text[s:e])
                if (
                    full != article_text[s:e]
                    and full.split()[0].lower().strip(".") in PERSON_TITLES
                ):
                    kind = "person"
            out.append(Candidate(s, e, article_text[s:e], kind))
    return out


def expand_name(article_text: str, name: str) -> str:
    """The fullest form of a name in the article.

    "Radan" becomes "Brigadier General Ahmad Reza Radan".
    """
    last = name.split()[-1]
    best = name
    for full in article_names(article_text).get(last, ()):
        tokens = full.split()
        if len(tokens) > len(best.split()) and all(t in tokens for t in name.split()):
            best = full
    return best


@lru_cache(maxsize=512)
def article_names(article_text: str) -> dict[str, tuple[str, ...]]:
    """Every name in an article, grouped by last word (computed once per article text)."""
    names: dict[str, list[str]] = {}
    for m in _NAME.finditer(article_text):
        for s, e in _clean_name(m.group(), m.start()):
            full = article_text[s:e]
            names.setdefault(full.split()[-1], []).append(full)
    return {last: tuple(dict.fromkeys(forms)) for last, forms in names.items()}


@lru_cache(maxsize=512)
def _standalone_counts(article_text: str) -> dict[str, int]:
    """How often each capitalized word stands alone (not inside a longer name)."""
    counts: dict[str, int] = {}
    for m in _NAME.finditer(article_text):
        if " " not in m.group():
            word = m.group().rstrip(".")
            counts[word] = counts.get(word, 0) + 1
    return counts
