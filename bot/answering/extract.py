"""Pick the short answer from the best evidence sentences.

Candidates of the type the question asks for are ranked by their sentence's score and
how close they sit to the question's terms; the same answer found in several
sentences adds up. A person's surname expands to its fullest form in the article.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.answering.candidates import Candidate, expand_name
from bot.answering.evidence import Evidence, type_weights_for
from bot.answering.question import QuestionInfo, focus_terms
from corpus.text import normalize_for_hash
from embeddings.tokenize import tokenize

TOP_SENTENCES = 10
VOTE_RATIO = 0.7
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Extracted:
    """The chosen answer and the evidence sentence it came from."""

    text: str
    evidence: Evidence
    score: float


def _distance(ev: Evidence, cand: Candidate, info: QuestionInfo) -> int:
    """Words between the candidate and the nearest question term in the sentence."""
    text = ev.article.text
    positions = []
    for i, m in enumerate(_WORD.finditer(text, ev.start, ev.end)):
        if set(tokenize(m.group())) & set(info.terms):
            positions.append(i)
    if not positions:
        return 10
    before = len(_WORD.findall(text[ev.start : cand.start]))
    after = before + len(_WORD.findall(cand.text)) - 1
    return min(min(abs(p - before), abs(p - after)) for p in positions)


def _next_to_asked_name(ev: Evidence, cand: Candidate, asked_names: set[str]) -> bool:
    """Whether the candidate stands within three words of a name the question asks about."""
    if not asked_names:
        return False
    text = ev.article.text
    before = text[max(ev.start, cand.start - 40) : cand.start].split()[-3:]
    after = text[cand.end : min(ev.end, cand.end + 40)].split()[:3]
    return bool(set(tokenize(" ".join(before + after))) & asked_names)


def _looks_like_year(text: str) -> bool:
    return bool(re.fullmatch(r"(19|20)\d\d", text.strip()))


def _unit_bonus(ev: Evidence, cand: Candidate, info: QuestionInfo) -> float:
    """For "how many officers": a number followed (soon) by "officers" fits better."""
    wanted = focus_terms(info)
    if cand.kind != "number" or not wanted:
        return 1.0
    following = ev.article.text[cand.end : cand.end + 40]
    return 1.6 if set(tokenize(following)[:3]) & wanted else 0.7


def _phrase_after_terms(ev: Evidence, info: QuestionInfo) -> str:
    """For "what ... to combat?": the words after the last question term, if short."""
    words = list(_WORD.finditer(ev.article.text, ev.start, ev.end))
    last = -1
    for i, m in enumerate(words):
        if set(tokenize(m.group())) & set(info.terms):
            last = i
    if last < 0 or last + 1 >= len(words):
        return ""
    rest = words[last + 1 :]
    phrase = ev.article.text[rest[0].start() : rest[-1].end()].rstrip('.!?"”’ ')
    return phrase if 1 <= len(rest) <= 8 else ""


def extract(info: QuestionInfo, evidence: list[Evidence]) -> Extracted | None:
    """The best answer span across the top evidence sentences, or None."""
    weights = type_weights_for(info)
    if info.qtype == "what" and not info.focus and evidence:
        # "What did they sign a memorandum to combat?": the words after the question's
        # last term answer it better than any name in the sentence.
        phrase = _phrase_after_terms(evidence[0], info)
        if phrase:
            return Extracted(phrase, evidence[0], evidence[0].score)
    focus = focus_terms(info)
    asked_names = set(info.name_terms)
    votes: dict[str, float] = {}
    best_for: dict[str, tuple[float, str, Evidence]] = {}
    # Only sentences nearly as good as the best vote: a weaker sentence of another
    # article must not outvote the one that answers.
    voters = [ev for ev in evidence[:TOP_SENTENCES] if ev.score >= evidence[0].score * VOTE_RATIO]
    for ev in voters:
        for cand in ev.candidates:
            fit = weights.get(cand.kind, 0.0)
            if not fit:
                continue
            closeness = 1.0 / (1.0 + _distance(ev, cand, info) / 10)
            score = ev.score * fit * closeness * _unit_bonus(ev, cand, info)
            cand_terms = set(tokenize(cand.text))
            if cand_terms & asked_names:
                score *= 0.1  # the question's own names are not its answer
            if focus and cand_terms & focus:
                score *= 2.0  # "which museum" -> "... Museum"
            if info.qtype == "who" and _next_to_asked_name(ev, cand, asked_names):
                score *= 0.5  # "National Guard chief Viktor Zolotov" describes the asked name
            if info.qtype == "how_many" and _looks_like_year(cand.text):
                score *= 0.3  # "how many times" is rarely answered by "2003"
            text = cand.text
            if cand.kind in ("person", "name"):
                text = expand_name(ev.article.text, cand.text)
            key = normalize_for_hash(text)
            votes[key] = votes.get(key, 0.0) + score
            if key not in best_for or score > best_for[key][0]:
                best_for[key] = (score, text, ev)
    if votes:
        key = max(votes, key=lambda k: votes[k])
        _, text, ev = best_for[key]
        return Extracted(text, ev, votes[key])
    if evidence and info.qtype in ("what", "which", "other"):
        ev = evidence[0]
        phrase = _phrase_after_terms(ev, info) if info.qtype != "other" else ""
        return Extracted(phrase or ev.text, ev, ev.score)
    return None
