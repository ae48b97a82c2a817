"""Pick the short answer from the best evidence sentences.

Candidate spans of the top sentences are ranked by ``bot.answering.ranker`` (the same
answer found in several sentences is one candidate); a person's surname expands to its
fullest form in the article. A "what" question without a focus noun is answered by the
words that follow the question's terms in the best sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.answering.evidence import Evidence
from bot.answering.question import QuestionInfo
from bot.answering.ranker import rank_candidates, term_positions

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Extracted:
    """The chosen answer and the evidence sentence it came from."""

    text: str
    evidence: Evidence
    score: float


def _phrase_after_terms(ev: Evidence, info: QuestionInfo) -> str:
    """For "what ... to combat?": the words after the last question term, if short."""
    words = list(_WORD.finditer(ev.article.text, ev.start, ev.end))
    positions = term_positions(ev, set(info.terms))
    last = positions[-1] if positions else -1
    if last < 0 or last + 1 >= len(words):
        return ""
    rest = words[last + 1 :]
    phrase = ev.article.text[rest[0].start() : rest[-1].end()].rstrip('.!?"”’ ')
    return phrase if 1 <= len(rest) <= 8 else ""


def extract(
    info: QuestionInfo, evidence: list[Evidence], weights: dict[str, float] | None = None
) -> Extracted | None:
    """The best answer span across the top evidence sentences, or None.

    ``weights`` replaces the ranker's fitted weights (the training script uses it).
    """
    if info.qtype == "what" and not info.focus and evidence:
        # "What did they sign a memorandum to combat?": the words after the question's
        # last term answer it better than any name in the sentence.
        phrase = _phrase_after_terms(evidence[0], info)
        if phrase:
            return Extracted(phrase, evidence[0], evidence[0].score)
    ranked = rank_candidates(info, evidence, weights)
    if ranked:
        best = ranked[0]
        return Extracted(best.text, best.evidence, best.score)
    if evidence and info.qtype in ("what", "which", "other"):
        ev = evidence[0]
        phrase = _phrase_after_terms(ev, info) if info.qtype != "other" else ""
        return Extracted(phrase or ev.text, ev, ev.score)
    return None
