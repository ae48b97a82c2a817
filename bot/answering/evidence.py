"""Evidence sentences: every sentence of the retrieved chunks, scored against the question.

A sentence's score mixes how much of the question it covers (IDF-weighted stemmed
terms: full weight in the sentence, half in its neighbours, a little in the title),
whether it names every name the question names, and how well its chunk was retrieved.
A sentence that negates the question's verb ("no agreement was signed") is heavily
penalized. What the answer is, the span reader decides (``reader.py``); these scores
choose what it reads and what is quoted.

Pure functions of their arguments: the engine runs them in worker threads, several answers
at once, so they keep no state between calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.answering.question import QuestionInfo
from corpus.models import Article
from corpus.text import sentence_spans
from embeddings.search import Hit
from embeddings.tokenize import term_set

# Weights of a sentence's score (tuned on the dev set with benchmarks/answers.py).
W_COVERAGE, W_NAMES, W_RETRIEVAL = 0.55, 0.15, 0.2
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
    chunk: tuple[int, int]  # the retrieved chunk it lies in (character offsets)

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
            chunk = (hit.chunk.start, hit.chunk.end)
            out.append(Evidence(article, s, e, score, coverage, names_found, chunk))
    out.sort(key=lambda ev: -ev.score)
    return out
