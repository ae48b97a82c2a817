"""Candidate answers described by features and ranked by a linear model.

Every typed span of the best evidence sentences becomes a candidate; the same answer
found in several sentences is one candidate whose features sum up what was seen
(how often, in how many articles, how well those sentences score, how close the span
sits to the question's words, whether its kind fits the question). A candidate's score
is ``WEIGHTS · features``; the weights are fitted on the RealTime QA dev questions by
``benchmarks/train_answer_ranker.py`` (a softmax over each question's candidates,
evaluated on months it was not fitted on), which prints them for this file.

Measured on the 370 RealTime QA dev questions (with abstention): on the same evidence
(12 chunks), the hand-set multiplicative rules this replaces gave F1 0.153 and these
features with weights fitted on the other months 0.173; with 20 chunks and abstention
recalibrated, 0.201 held out (0.206 fitted on all months). Always picking the best
candidate would give 0.37: ranking, more than candidate generation, is where the loss is.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from bot.answering.candidates import Candidate, expand_name
from bot.answering.evidence import Evidence, type_weights_for
from bot.answering.question import QuestionInfo, focus_terms
from corpus.text import normalize_for_hash
from embeddings.tokenize import term_set, tokenize

CANDIDATE_SENTENCES = 20  # evidence sentences whose spans compete
_WORD = re.compile(r"\S+")

FEATURES = (
    "best",  # the best occurrence: sentence score x type fit x closeness
    "votes",  # the same, summed over every occurrence
    "log_count",  # log(1 + occurrences)
    "articles",  # distinct articles naming it, minus one
    "sentence_score",  # best sentence score relative to the top sentence
    "sentence_rank",  # 1 / (1 + rank of its best sentence)
    "type_fit",  # how well its kind fits the question (0..1)
    "closeness",  # 1 / (1 + words to the nearest question term / 10), best occurrence
    "asked_name",  # it contains a name the question asks about
    "in_question",  # share of its words that are question words
    "focus",  # it contains the question's focus noun ("which museum" -> "... Museum")
    "focus_near",  # the focus noun stands within three words ("the Bills team")
    "coverage",  # how much of the question its best sentence covers
    "names_found",  # share of the question's names around its best sentence
    "describes_asked",  # a "who" candidate standing next to an asked name
    "year_for_count",  # a year offered for "how many"
    "unit_follows",  # a number followed by the focus noun ("5 officers")
    "in_title",  # its words appear in its article's title
    "length",  # log of its word count
    "is_number",
    "is_date",
    "is_title",
    "is_person",
    "is_org",
    "is_place",
)


@dataclass
class RankedCandidate:
    """One answer (several occurrences folded together), its features and score."""

    text: str
    evidence: Evidence
    features: dict[str, float]
    score: float = 0.0


def term_positions(ev: Evidence, terms: set[str]) -> list[int]:
    """Indexes of the sentence's words that are question terms."""
    return [
        i
        for i, m in enumerate(_WORD.finditer(ev.article.text, ev.start, ev.end))
        if set(tokenize(m.group())) & terms
    ]


def _distance(ev: Evidence, cand: Candidate, positions: list[int]) -> int:
    """Words between the candidate and the nearest question term in the sentence."""
    if not positions:
        return 10
    before = len(_WORD.findall(ev.article.text, ev.start, cand.start))
    after = before + len(_WORD.findall(cand.text)) - 1
    return min(min(abs(p - before), abs(p - after)) for p in positions)


def _next_to(ev: Evidence, cand: Candidate, names: set[str]) -> bool:
    """Whether the candidate stands within three words of one of ``names``."""
    if not names:
        return False
    text = ev.article.text
    before = text[max(ev.start, cand.start - 40) : cand.start].split()[-3:]
    after = text[cand.end : min(ev.end, cand.end + 40)].split()[:3]
    return bool(set(tokenize(" ".join(before + after))) & names)


def _is_year(text: str) -> bool:
    return bool(re.fullmatch(r"(19|20)\d\d", text.strip()))


@dataclass
class _Sightings:
    """What was seen of one answer across the sentences."""

    text: str
    evidence: Evidence  # the best-scored sentence naming it (evidence comes best first)
    best: float = -1.0  # the best occurrence's score
    best_features: dict[str, float] = field(default_factory=dict)
    votes: float = 0.0
    count: int = 0
    articles: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class _Asked:
    """What the features need to know of the question (computed once per question)."""

    info: QuestionInfo
    terms: set[str]
    names: set[str]
    focus: set[str]
    top_score: float  # the best evidence sentence's score


def candidate_features(info: QuestionInfo, evidence: list[Evidence]) -> list[RankedCandidate]:
    """Every candidate answer of the top evidence sentences with its features (unscored)."""
    if not evidence:
        return []
    type_weights = type_weights_for(info)
    asked = _Asked(
        info, set(info.terms), set(info.name_terms), focus_terms(info), evidence[0].score or 1.0
    )
    seen: dict[str, _Sightings] = {}
    for rank, ev in enumerate(evidence[:CANDIDATE_SENTENCES]):
        positions = term_positions(ev, asked.terms) if ev.candidates else []
        for cand in ev.candidates:
            fit = type_weights.get(cand.kind, 0.0)
            if not fit:
                continue
            text = cand.text
            if cand.kind in ("person", "name"):
                text = expand_name(ev.article.text, cand.text)
            key = normalize_for_hash(text)
            if not key:
                continue
            closeness = 1.0 / (1.0 + _distance(ev, cand, positions) / 10)
            occurrence = ev.score * fit * closeness
            sightings = seen.setdefault(key, _Sightings(text, ev))
            sightings.votes += occurrence
            sightings.count += 1
            sightings.articles.add(ev.article.id)
            if occurrence > sightings.best:
                sightings.best = occurrence
                sightings.best_features = _occurrence_features(
                    asked, ev, cand, set(tokenize(text)), fit, closeness, rank
                )
    return [
        RankedCandidate(
            text=s.text,
            evidence=s.evidence,
            features=s.best_features
            | {
                "best": s.best,
                "votes": s.votes,
                "log_count": math.log1p(s.count),
                "articles": len(s.articles) - 1.0,
            },
        )
        for s in seen.values()
    ]


def _occurrence_features(
    asked: _Asked,
    ev: Evidence,
    cand: Candidate,
    words: set[str],
    fit: float,
    closeness: float,
    rank: int,
) -> dict[str, float]:
    """The features of one occurrence (the best one is kept per candidate), but for those
    that sum up every occurrence (best, votes, log_count, articles)."""
    qtype, focus = asked.info.qtype, asked.focus
    number_follows = 0.0
    if cand.kind == "number" and focus:
        following = ev.article.text[cand.end : cand.end + 40]
        number_follows = 1.0 if set(tokenize(following)[:3]) & focus else 0.0
    return {
        "sentence_score": ev.score / asked.top_score,
        "sentence_rank": 1.0 / (1.0 + rank),
        "type_fit": fit,
        "closeness": closeness,
        "asked_name": 1.0 if words & asked.names else 0.0,
        "in_question": len(words & asked.terms) / len(words) if words else 0.0,
        "focus": 1.0 if focus and words & focus else 0.0,
        "focus_near": 1.0 if _next_to(ev, cand, focus) else 0.0,
        "coverage": ev.coverage,
        "names_found": ev.names_found,
        "describes_asked": 1.0 if qtype == "who" and _next_to(ev, cand, asked.names) else 0.0,
        "year_for_count": 1.0 if qtype == "how_many" and _is_year(cand.text) else 0.0,
        "unit_follows": number_follows,
        "in_title": 1.0 if words and words <= term_set(ev.article.title) else 0.0,
        "length": math.log(max(1, len(cand.text.split()))),
        "is_number": 1.0 if cand.kind == "number" else 0.0,
        "is_date": 1.0 if cand.kind == "date" else 0.0,
        "is_title": 1.0 if cand.kind == "title" else 0.0,
        "is_person": 1.0 if cand.kind == "person" else 0.0,
        "is_org": 1.0 if cand.kind == "org" else 0.0,
        "is_place": 1.0 if cand.kind == "place" else 0.0,
    }


def rank_candidates(
    info: QuestionInfo, evidence: list[Evidence], weights: dict[str, float] | None = None
) -> list[RankedCandidate]:
    """Candidates scored by ``weights`` (default: the fitted ``WEIGHTS``), best first."""
    weights = WEIGHTS if weights is None else weights
    ranked = candidate_features(info, evidence)
    for entry in ranked:
        entry.score = sum(weights.get(name, 0.0) * value for name, value in entry.features.items())
    ranked.sort(key=lambda entry: -entry.score)
    return ranked


# Fitted by benchmarks/train_answer_ranker.py (see its docstring for how and on what).
WEIGHTS: dict[str, float] = {
    "best": 3.3349,
    "votes": 0.1741,
    "log_count": 1.0719,
    "articles": -0.2148,
    "sentence_score": 3.5107,
    "sentence_rank": 0.0336,
    "type_fit": 1.5194,
    "closeness": 0.0085,
    "asked_name": -0.6181,
    "in_question": -1.4618,
    "focus": 2.5312,
    "focus_near": 0.1133,
    "coverage": 0.0843,
    "names_found": -0.4681,
    "describes_asked": -0.1322,
    "year_for_count": -2.7448,
    "unit_follows": 2.3926,
    "in_title": 1.2083,
    "length": 0.5607,
    "is_number": 1.4283,
    "is_date": 1.9812,
    "is_title": 0.2267,
    "is_person": 0.4152,
    "is_org": -0.5795,
    "is_place": 0.2457,
}
