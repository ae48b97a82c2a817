"""Optional generative answers through any OpenAI-compatible chat-completions endpoint.

The extractive engine picks the evidence; a language model reads the best passages and
writes a short answer with the exact words that support it. Nothing the model says is
shown unless it can be checked: every quote must be found (``verify.locate_quote``)
inside the passage it cites, and is then shown as the article's own stored text. When
the model fails, times out, talks nonsense or cannot back its answer with a verified
quote, the extractive ``fallback`` answer is returned unchanged.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

import httpx

from bot.answering.engine import MAX_QUOTES, MORE_QUOTES
from bot.answering.evidence import Evidence
from bot.answering.llm_reply import LlmError, ModelReply, message_content, parse_reply
from bot.answering.models import Answer, Quote
from bot.answering.verify import locate_quote
from bot.settings import Settings
from corpus.models import Article
from corpus.text import sentence_spans

log = logging.getLogger(__name__)

CONTEXT_CHARS = 400
MAX_ANSWER_CHARS = 300

SYSTEM_PROMPT = """\
You answer questions about the news using ONLY the numbered passages you are given.
Reply with a single JSON object and nothing else, shaped like
{"answer": "<one or two short sentences>",
 "quotes": [{"passage": <number>, "text": "<exact words>"}]}
Rules:
- Every quote must be copied word for word from the passage whose number it gives: \
a whole sentence or a clause of at least five words. Do not paraphrase, shorten \
inside a quote, or join words from different places.
- Give one to three quotes that directly support the answer.
- If the passages do not answer the question, reply {"answer": "", "quotes": []}.
- Do not use outside knowledge."""


@dataclass(frozen=True)
class LlmConfig:
    """Where and how to reach the chat-completions endpoint."""

    base_url: str  # e.g. "https://api.openai.com/v1" or "http://127.0.0.1:8080/v1"
    model: str
    api_key: str = ""
    timeout: float = 20.0
    max_passages: int = 6

    @classmethod
    def from_settings(cls, settings: Settings) -> LlmConfig | None:
        """The configured endpoint, or None when generative answers are off."""
        if not settings.llm_base_url or not settings.llm_model:
            return None
        return cls(
            base_url=settings.llm_base_url,
            model=settings.llm_model,
            api_key=settings.llm_api_key,
            timeout=settings.llm_timeout,
        )

    @property
    def endpoint(self) -> str:
        """The chat-completions URL."""
        return self.base_url.rstrip("/") + "/chat/completions"


@dataclass(frozen=True)
class Passage:
    """A numbered, verbatim range of an article shown to the model."""

    number: int
    article: Article
    start: int
    end: int

    @property
    def text(self) -> str:
        """The passage, exactly as stored."""
        return self.article.text[self.start : self.end]


# --------------------------------------------------------------------------
# Passages
# --------------------------------------------------------------------------


def _neighbourhood(
    spans: list[tuple[int, int]], start: int, end: int, budget: int
) -> tuple[int, int]:
    """Grow ``[start, end)`` by whole sentences, alternating sides, within ``budget`` chars."""
    before = [s for s in spans if s[1] <= start][::-1]  # nearest first
    after = [s for s in spans if s[0] >= end]
    used = 0
    sides = [before, after]
    while any(sides):
        for i, side in enumerate(sides):
            if not side:
                continue
            s, e = side[0]
            grown = (start - s) if i == 0 else (e - end)
            if used + grown > budget:
                sides[i] = []
                continue
            used += grown
            start, end = (s, end) if i == 0 else (start, e)
            side.pop(0)
    return start, end


def passage_range(
    article: Article,
    start: int,
    end: int,
    budget: int = CONTEXT_CHARS,
    spans: list[tuple[int, int]] | None = None,
) -> tuple[int, int]:
    """The evidence sentence plus up to ``budget`` chars of whole sentences around it.

    ``spans`` are the article's sentence spans, when the caller already has them.
    """
    spans = sentence_spans(article.text) if spans is None else spans
    return _neighbourhood(spans, start, end, budget)


def build_passages(evidence: list[Evidence], max_passages: int) -> list[Passage]:
    """Numbered passages from the best evidence, grouped by article, in text order.

    Evidence already inside a chosen passage adds nothing; overlapping passages of one
    article are merged.
    """
    chosen: dict[int, list[tuple[int, int]]] = {}
    articles: dict[int, Article] = {}
    spans: dict[int, list[tuple[int, int]]] = {}
    count = 0
    for ev in evidence:
        if count >= max_passages:
            break
        ranges = chosen.setdefault(ev.article.id, [])
        articles.setdefault(ev.article.id, ev.article)
        if any(s <= ev.start and ev.end <= e for s, e in ranges):
            continue
        if ev.article.id not in spans:
            spans[ev.article.id] = sentence_spans(ev.article.text)
        s, e = passage_range(ev.article, ev.start, ev.end, spans=spans[ev.article.id])
        overlapping = [r for r in ranges if r[0] < e and s < r[1]]
        for r in overlapping:
            ranges.remove(r)
            s, e = min(s, r[0]), max(e, r[1])
        ranges.append((s, e))
        count += 1 - len(overlapping)
    passages: list[Passage] = []
    for article_id, ranges in chosen.items():
        for s, e in sorted(ranges):
            passages.append(Passage(len(passages) + 1, articles[article_id], s, e))
    return passages


# --------------------------------------------------------------------------
# Prompt and reply
# --------------------------------------------------------------------------


def _passage_header(p: Passage) -> str:
    a = p.article
    bits = [f'"{a.title}"'] if a.title else []
    if a.source:
        bits.append(a.source)
    if a.published_at:
        bits.append(a.published_at.isoformat())
    return f"[{p.number}] " + ", ".join(bits)


def build_messages(question: str, passages: list[Passage]) -> list[dict[str, str]]:
    """The system and user messages: the rules, the numbered passages, the question."""
    blocks = [f"{_passage_header(p)}\n{p.text}" for p in passages]
    user = (
        "Passages:\n\n"
        + "\n\n".join(blocks)
        + f"\n\nQuestion: {question}\n\nReply with the JSON object only."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


# --------------------------------------------------------------------------
# Verification and the answer
# --------------------------------------------------------------------------


def verify_quotes(reply: ModelReply, passages: list[Passage]) -> list[Quote]:
    """The model's quotes that are found verbatim in the passage they cite, deduplicated."""
    by_number = {p.number: p for p in passages}
    verified: list[Quote] = []
    for mq in reply.quotes:
        passage = by_number.get(mq.passage)
        if passage is None:
            log.info("dropped a quote citing passage %s of %d", mq.passage, len(passages))
            continue
        span = locate_quote(passage.article.text, mq.text, within=(passage.start, passage.end))
        if span is None:
            log.info("dropped an unverified quote from passage %d: %.80r", mq.passage, mq.text)
            continue
        quote = _quote(passage.article, *span)
        if not any(_overlaps(quote, q) for q in verified):
            verified.append(quote)
    return verified


def _quote(article: Article, start: int, end: int) -> Quote:
    """A verified span of an article as a quote with its source."""
    return Quote(
        article.id,
        start,
        end,
        article.text[start:end],
        article.title,
        article.source,
        article.published_at,
        article.url,
    )


def _overlaps(a: Quote, b: Quote) -> bool:
    return a.article_id == b.article_id and a.start < b.end and b.start < a.end


def _short(text: str, limit: int = MAX_ANSWER_CHARS) -> str:
    """At most ``limit`` characters, cut at a word boundary with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "…"


def _abstention(question: str, fallback: Answer) -> Answer:
    """An abstaining answer with the fallback's corpus dates."""
    return Answer(
        question=question,
        text="",
        abstained=True,
        corpus_first=fallback.corpus_first,
        corpus_last=fallback.corpus_last,
        as_of=fallback.as_of,
        method="generative",
        notes=fallback.notes,
    )


def _generative_answer(question: str, text: str, verified: list[Quote], fallback: Answer) -> Answer:
    """The model's answer with its verified quotes first, then the fallback's others."""
    extra = [
        q
        for q in (*fallback.quotes, *fallback.more_quotes)
        if not any(_overlaps(q, v) for v in verified)
    ]
    more = [*verified[MAX_QUOTES:], *extra][:MORE_QUOTES]
    return replace(
        fallback,
        question=question,
        text=_short(text),
        abstained=False,
        quotes=tuple(verified[:MAX_QUOTES]),
        more_quotes=tuple(more),
        method="generative",
        notes=(*fallback.notes, f"generative: {len(verified)} verified quote(s)"),
    )


class GenerativeAnswerer:
    """Answers from the best evidence through a chat-completions model, quotes verified."""

    def __init__(self, config: LlmConfig, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client

    async def answer(self, question: str, evidence: list[Evidence], fallback: Answer) -> Answer:
        """The model's verified answer, or ``fallback`` whenever it cannot be trusted."""
        # Splitting articles into sentences and locating quotes is CPU work: off the loop.
        passages = await asyncio.to_thread(build_passages, evidence, self.config.max_passages)
        if not passages:
            return fallback
        try:
            content = await self.complete(build_messages(question, passages))
        except LlmError as exc:
            log.warning("generative answer failed, using the extractive one: %s", exc)
            return fallback
        reply = await asyncio.to_thread(parse_reply, content)
        if reply is None:
            log.warning("model reply is not the agreed JSON: %.200r", content)
            return fallback
        return await asyncio.to_thread(self._decide, question, reply, passages, fallback)

    def _decide(
        self, question: str, reply: ModelReply, passages: list[Passage], fallback: Answer
    ) -> Answer:
        """Trust the model only with verified quotes; an LLM refusal never beats evidence."""
        if not reply.answer:
            if fallback.abstained:
                return _abstention(question, fallback)
            log.info("model declined but the extractive engine answered; keeping it")
            return fallback
        verified = verify_quotes(reply, passages)
        if not verified:
            log.warning("no quote of the model's answer could be verified; using the fallback")
            return fallback
        return _generative_answer(question, reply.answer, verified, fallback)

    async def complete(self, messages: list[dict[str, str]]) -> str:
        """POST the messages; the reply's text. Raises ``LlmError`` on any failure."""
        payload = {"model": self.config.model, "messages": messages, "temperature": 0}
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        try:
            async with asyncio.timeout(self.config.timeout):
                response = await self._post(payload, headers)
        except TimeoutError:
            raise LlmError(f"no reply within {self.config.timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise LlmError(f"{type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise LlmError(f"HTTP {response.status_code}: {response.text[:200]!r}")
        try:
            body = response.json()
        except ValueError:
            raise LlmError(f"response is not JSON: {response.text[:200]!r}") from None
        return message_content(body)

    async def _post(self, payload: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        """One POST through the injected client or a short-lived one."""
        if self._client is not None:
            return await self._client.post(
                self.config.endpoint, json=payload, headers=headers, timeout=self.config.timeout
            )
        async with httpx.AsyncClient(timeout=self.config.timeout) as client:
            return await client.post(self.config.endpoint, json=payload, headers=headers)
