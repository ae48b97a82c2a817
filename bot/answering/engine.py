"""``AnswerEngine.answer(question, as_of)``: retrieve, score evidence, extract, quote, or abstain.

Plain Python used by the CLI, the benchmarks and the bot. Every quote is an exact
sentence span of a stored article.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from bot.answering.evidence import Evidence, score_sentences
from bot.answering.extract import extract
from bot.answering.models import Answer, Quote
from bot.answering.question import QuestionInfo, analyze
from bot.answering.timeparse import resolve_time
from corpus.store import Store
from corpus.text import normalize_for_hash
from embeddings.search import Hit, SearchFilters, SearchService

if TYPE_CHECKING:
    from bot.answering.generative import GenerativeAnswerer

RETRIEVE_K = 20
MAX_QUOTES = 3
MORE_QUOTES = 6
# Calibration (grid over the three thresholds, and a floor on the answer ranker's score,
# which never helped): the highest dev F1 on the 370 RealTime QA questions such that every
# near miss of tests/fixtures/sample_questions.jsonl abstains. The names threshold is what
# the near misses need (the closest one finds 0.75 of the question's names). Coverage 0.2
# still turns away a sentence that shares little more than a word with the question; with
# the answer ranker, 0.4 would cost 0.014 F1 (0.205 -> 0.191), 0.3 cost 0.009.
MIN_COVERAGE = 0.2
MIN_SCORE = 0.4
MIN_NAMES_FOUND = 0.8


@dataclass(frozen=True)
class Thresholds:
    """When the evidence is too weak to answer."""

    min_coverage: float = MIN_COVERAGE
    min_score: float = MIN_SCORE
    min_names_found: float = MIN_NAMES_FOUND


def quote_of(ev: Evidence) -> Quote:
    """An evidence sentence as a quote with its source."""
    a = ev.article
    return Quote(a.id, ev.start, ev.end, ev.text, a.title, a.source, a.published_at, a.url)


def supporting_first(answer: str, chosen: Evidence, evidence: list[Evidence]) -> list[Evidence]:
    """The answer's sentence, then others that name the answer, then the rest of its article,
    then other good evidence: quotes that support the answer come before mere context."""
    key = normalize_for_hash(answer.split()[-1]) if answer.split() else ""
    rest = [ev for ev in evidence if ev is not chosen and ev.score >= chosen.score * 0.5]
    names_it = [ev for ev in rest if key and key in normalize_for_hash(ev.text)]
    same_article = [ev for ev in rest if ev.article.id == chosen.article.id and ev not in names_it]
    others = [ev for ev in rest if ev not in names_it and ev not in same_article]
    return [chosen, *names_it, *same_article, *others]


class AnswerEngine:
    """Extractive question answering over the corpus."""

    def __init__(
        self,
        store: Store,
        search: SearchService,
        thresholds: Thresholds | None = None,
        generator: GenerativeAnswerer | None = None,
    ) -> None:
        self.store = store
        self.search = search
        self.thresholds = thresholds or Thresholds()
        self.generator = generator

    async def retrieve(self, info: QuestionInfo, as_of: date) -> list[Hit]:
        """Hybrid hits published by ``as_of``, preferring the period the question names."""
        window = resolve_time(info.text, as_of)
        prefer = (window.since, window.until) if window else None
        return await self.search.search(
            info.text, RETRIEVE_K, SearchFilters(until=as_of, prefer=prefer)
        )

    async def evidence(self, question: str, as_of: date | None = None) -> list[Evidence]:
        """Scored evidence sentences for a question (best first)."""
        return await self._evidence(analyze(question), as_of or date.today())

    async def _evidence(self, info: QuestionInfo, as_of: date) -> list[Evidence]:
        return score_sentences(info, await self.retrieve(info, as_of), self.search.idf)

    def is_weak(self, best: Evidence, info: QuestionInfo) -> bool:
        """Too weak to answer: too little of the question covered, or a name missing."""
        return (
            best.coverage < self.thresholds.min_coverage
            or best.score < self.thresholds.min_score
            or best.names_found < self.thresholds.min_names_found
        )

    async def answer(self, question: str, as_of: date | None = None) -> Answer:
        """Answer ``question`` as a reader on ``as_of`` (default today) would be answered.

        With a language model configured, it may rephrase the answer and pick quotes,
        but only quotes verified against the stored text survive, and any failure
        falls back to the extractive answer.
        """
        as_of = as_of or date.today()
        info = analyze(question)
        evidence = await self._evidence(info, as_of)
        extractive = await self._extractive(info, evidence, as_of)
        if self.generator is None:
            return extractive
        return await self.generator.answer(question, evidence, extractive)

    async def _extractive(
        self, info: QuestionInfo, evidence: list[Evidence], as_of: date
    ) -> Answer:
        found = None
        if evidence and not self.is_weak(evidence[0], info):
            found = extract(info, evidence)
        if found is None:
            return await self.not_found(info.text, as_of)
        ordered = supporting_first(found.text, found.evidence, evidence)
        quotes = [quote_of(ev) for ev in ordered[: MAX_QUOTES + MORE_QUOTES]]
        return Answer(
            question=info.text,
            text=found.text,
            abstained=False,
            quotes=tuple(quotes[:MAX_QUOTES]),
            more_quotes=tuple(quotes[MAX_QUOTES:]),
            as_of=as_of,
            confidence=evidence[0].score,
        )

    async def not_found(self, question: str, as_of: date) -> Answer:
        """An abstention that states the corpus' date range (as seen on ``as_of``)."""
        first, last = await self.store.date_range()
        return Answer(
            question=question,
            text="",
            abstained=True,
            corpus_first=first,
            corpus_last=min(last, as_of) if last else None,
            as_of=as_of,
        )
