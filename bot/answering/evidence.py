"""Evidence sentences: every sentence of the retrieved chunks, scored against the question.

A sentence's score mixes how much of the question it covers (IDF-weighted stemmed
terms: full weight in the sentence, half in its neighbours, a little in the title),
whether it names every name the question names, how well its chunk was retrieved, and
whether it holds a span of the answer type the question asks for. A sentence that
negates the question's verb ("no agreement was signed") is heavily penalized.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from bot.answering.candidates import Candidate, candidates
from bot.answering.question import QuestionInfo
from corpus.models import Article
from corpus.text import sentence_spans
from embeddings.search import Hit
from embeddings.tokenize import term_set, tokenize

QUANTITY_FOCUS = set(
    """age amount budget cost distance fee figure height length magnitude number pay
    percent percentage population price rate salary score share speed sum temperature total
    value weight worth years""".split()
)
TYPE_KINDS = {
    "who": {"person": 1.0, "org": 0.7, "name": 0.6},
    "where": {"place": 1.0, "name": 0.6, "org": 0.3},
    "when": {"date": 1.0},
    "how_many": {"number": 1.0},
    "which": {"name": 0.8, "org": 0.8, "title": 0.7, "person": 0.6, "place": 0.6},
    "what": {"name": 0.6, "org": 0.6, "title": 0.6, "person": 0.4, "place": 0.4, "number": 0.3},
    "other": {
        "person": 0.6,
        "name": 0.6,
        "org": 0.5,
        "place": 0.5,
        "title": 0.5,
        "number": 0.3,
        "date": 0.3,
    },
}


PLACE_FOCUS = set(
    """country state city nation region province county town capital island continent
    village territory""".split()
)
ORG_FOCUS = set(
    """team club company group organization organisation airline brand band university agency
    firm network retailer chain bank party league school college""".split()
)
TITLE_FOCUS = set(
    """show sitcom series franchise book novel memoir film movie song album play musical
    title game podcast documentary""".split()
)


def type_weights_for(info: QuestionInfo) -> dict[str, float]:
    """How well each candidate kind fits the question ("what fee" wants a number)."""
    if info.qtype in ("what", "which") and info.focus in TITLE_FOCUS:
        return {"title": 1.0, "name": 0.6, "org": 0.4}
    if info.qtype in ("what", "which") and info.focus in PLACE_FOCUS:
        return {"place": 1.0, "name": 0.8, "org": 0.2}
    if info.qtype in ("what", "which") and info.focus in ORG_FOCUS:
        return {"org": 1.0, "name": 0.9, "title": 0.3}
    if info.qtype in ("what", "which") and info.focus in QUANTITY_FOCUS:
        return {"number": 1.0}
    if info.qtype in ("what", "which") and info.focus in ("day", "date", "year", "month"):
        return {"date": 1.0, "number": 0.5}
    return TYPE_KINDS.get(info.qtype, {})


# Weights of a sentence's score (tuned on the dev set with benchmarks/answers.py).
W_COVERAGE, W_NAMES, W_RETRIEVAL, W_TYPE = 0.55, 0.15, 0.2, 0.1
TYPED_SENTENCES = 25  # sentences that get candidate spans (the rest cannot answer)
_NEGATION = re.compile(
    r"\b(no|not|never|nothing|neither|nor|without|did\s+not|didn['’]t|was\s+not|wasn['’]t)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Evidence:
    """A scored sentence of a retrieved article."""

    article: Article
    start: int
    end: int
    score: float
    coverage: float
    names_found: float
    candidates: tuple[Candidate, ...]

    @property
    def text(self) -> str:
        """The sentence, exactly as stored."""
        return self.article.text[self.start : self.end]


def _coverage(weights: dict[str, float], here: set[str], near: set[str], title: set[str]) -> float:
    """IDF-weighted share of the question's terms: in the sentence, nearby, in the title."""
    total = sum(weights.values())
    if not total:
        return 0.0
    got = 0.0
    for t, weight in weights.items():
        if t in here:
            got += weight
        elif t in near:
            got += 0.5 * weight
        elif t in title:
            got += 0.3 * weight
    return got / total


def _names_found(
    names: tuple[str, ...], here: set[str], near: set[str], title: set[str], chunk: set[str]
) -> float:
    """Share of the question's names present: in the sentence or title fully, nearby partly."""
    if not names:
        return 1.0
    got = 0.0
    for t in names:
        if t in here or t in title:
            got += 1.0
        elif t in near:
            got += 0.34
        elif t in chunk:
            got += 0.2
    return got / len(names)


def _negates(sentence: str, info: QuestionInfo, tokens: set[str]) -> bool:
    """Whether the sentence denies what the question asks about (a question verb nearby)."""
    if not _NEGATION.search(sentence) or _NEGATION.search(info.text):
        return False
    verbs = [t for t in info.terms if t not in info.name_terms]
    return any(v in tokens for v in verbs)


def score_sentences(
    info: QuestionInfo, hits: list[Hit], idf: Callable[[str], float]
) -> list[Evidence]:
    """Every distinct sentence of the hits' chunks, scored, best first."""
    seen: set[tuple[int, int]] = set()
    out: list[Evidence] = []
    top = hits[0].score if hits else 1.0
    type_weights = type_weights_for(info)
    question_terms = set(info.terms)
    weights = {t: idf(t) for t in info.terms}
    for hit in hits:
        article = hit.article
        spans = sentence_spans(article.text, hit.chunk.start, hit.chunk.end)
        token_sets = [term_set(article.text[s:e]) for s, e in spans]
        title_tokens = term_set(article.title)
        chunk_tokens = set().union(*token_sets) if token_sets else set()
        retrieval = hit.score / top if top else 0.0
        for i, (s, e) in enumerate(spans):
            if (article.id, s) in seen:
                continue
            seen.add((article.id, s))
            here = token_sets[i]
            near = (token_sets[i - 1] if i else set()) | (
                token_sets[i + 1] if i + 1 < len(spans) else set()
            )
            coverage = _coverage(weights, here, near, title_tokens)
            names_found = _names_found(info.name_terms, here, near, title_tokens, chunk_tokens)
            score = W_COVERAGE * coverage + W_NAMES * names_found + W_RETRIEVAL * retrieval
            if _negates(article.text[s:e], info, here):
                score *= 0.4
            out.append(Evidence(article, s, e, score, coverage, names_found, ()))
    out.sort(key=lambda ev: -ev.score)
    # Candidate spans cost the most: only the sentences that can still come first get them.
    typed = [_with_candidates(ev, type_weights, question_terms) for ev in out[:TYPED_SENTENCES]]
    typed.sort(key=lambda ev: -ev.score)
    return typed + out[TYPED_SENTENCES:]


def _with_candidates(
    ev: Evidence, type_weights: dict[str, float], question_terms: set[str]
) -> Evidence:
    """The evidence with its typed candidate spans and the answer-type part of its score."""
    cands = tuple(
        c
        for c in candidates(ev.article.text, ev.start, ev.end)
        if not set(tokenize(c.text)) <= question_terms
    )
    type_fit = max((type_weights.get(c.kind, 0.0) for c in cands), default=0.0)
    return replace(ev, score=ev.score + W_TYPE * type_fit, candidates=cands)
