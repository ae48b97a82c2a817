"""The CPU work of an answer and of a topic match never runs on the event loop.

Two kinds of proof, both independent of timing:

- every CPU step (parsing the question, splitting and scoring sentences, choosing the
  passages, composing the quotes, tokenizing and splitting an article for a match) is
  recorded with the thread it ran on: none may be the loop's thread;
- a CPU step held open (blocked on a ``threading.Event``) while the loop must go on to
  release it: the release comes from a coroutine, so it only happens if the loop is free.
  Were the step on the loop, the wait would time out and the test fail.

Deterministic: the hash embedder and a fake reader; the questions are asked over the
sample corpus plus one very long article, as a busy bot would see them.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio

import bot.answering.engine as engine_module
import bot.answering.evidence as evidence_module
import bot.answering.question as question_module
import bot.subscriptions.matcher as matcher_module
from bot.answering.engine import AnswerEngine
from bot.answering.reader import Reading, Span
from bot.subscriptions.matcher import TopicMatcher
from corpus.ingest import ingest_results
from corpus.models import ArticleDraft
from corpus.readers.dispatch import read_path
from corpus.store import Store
from corpus.subscription_repo import Subscription
from embeddings.embedder import HashEmbedder
from embeddings.index_dir import IndexDirectory
from embeddings.search import SearchService

AFTER_ALL = date(2023, 9, 1)
QUESTION = "Who signed with Zolotov?"
HELD_TIMEOUT = 20.0  # only reached when the loop is blocked (the test then fails)

# The CPU functions of one answer and one match, by the names the modules use for them.
CPU_FUNCTIONS = (
    "analyze",
    "resolve_time",
    "score_sentences",
    "passages_for",
    "window_around",
    "best_finding",
    "supporting_quotes",
    "normalize_for_hash",
    "sentence_spans",
    "term_set",
    "tokenize",
    "stems_of",
)
MODULES = (engine_module, evidence_module, question_module, matcher_module)


def long_article(sentences: int = 1500) -> ArticleDraft:
    """A very long article about the topic matched below (its sentences all differ)."""
    text = " ".join(
        f"Harbour crane {i} was repaired by the Caspian ferry operator on day {i}."
        for i in range(sentences)
    )
    return ArticleDraft(
        title="Caspian ferry operator repairs every harbour crane",
        text=text,
        published_at=date(2023, 7, 1),
        source="Test Wire",
        url="https://example.test/long-ferry-story",
    )


class FakeReader:
    """Finds the first word of the first passage with probability 0.95, so the engine
    goes through every stage (a finding, its supporting quotes)."""

    async def aread(self, question: str, passages: Sequence[str]) -> Reading:
        if not passages:
            return Reading((), 0.0)
        word = passages[0].split()[0]
        return Reading((Span(0, 0, len(word), word, math.log(0.95)),), math.log(0.01))


@dataclass
class Calls:
    """Which instrumented function ran on which thread."""

    threads: dict[str, set[int]] = field(default_factory=dict)

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.threads.setdefault(name, set()).add(threading.get_ident())
            return fn(*args, **kwargs)

        return recorded

    def on(self, ident: int) -> set[str]:
        """The functions that ran (at least once) on thread ``ident``."""
        return {name for name, idents in self.threads.items() if ident in idents}


def instrument(monkeypatch: pytest.MonkeyPatch, modules: Sequence[ModuleType]) -> Calls:
    """Record the thread of every call of the CPU functions, where the modules look them up."""
    calls = Calls()
    for module in modules:
        for name in CPU_FUNCTIONS:
            fn = getattr(module, name, None)
            if callable(fn):
                monkeypatch.setattr(module, name, calls.wrap(name, fn))
    return calls


@dataclass
class Held:
    """A function that, on its first call, blocks its thread until the loop releases it."""

    fn: Callable[..., Any]
    entered: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    released_in_time: bool | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.entered.is_set():
            self.entered.set()
            self.released_in_time = self.released.wait(HELD_TIMEOUT)
        return self.fn(*args, **kwargs)

    async def release_from_the_loop(self) -> None:
        """Wait (off the loop) for the call to start, then release it from a coroutine."""
        assert await asyncio.to_thread(self.entered.wait, HELD_TIMEOUT)
        self.released.set()


@dataclass
class Corpus:
    store: Store
    search: SearchService
    embedder: HashEmbedder
    long_id: int


@pytest_asyncio.fixture
async def corpus(tmp_path: Path, samples_dir: Path) -> AsyncIterator[Corpus]:
    """The sample corpus and one very long article, indexed with the hash embedder."""
    store = await Store.open(tmp_path / "newsbot.db")
    try:
        await ingest_results(store, read_path(samples_dir))
        report = await ingest_results(store, [long_article()])
        embedder = HashEmbedder()
        search = SearchService(store, embedder, IndexDirectory(tmp_path / "index"))
        await search.open()
        yield Corpus(store, search, embedder, report.added[0])
    finally:
        await store.close()


async def test_no_step_of_an_answer_runs_on_the_event_loop(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = AnswerEngine(corpus.store, corpus.search, reader=FakeReader())  # type: ignore[arg-type]
    calls = instrument(monkeypatch, MODULES)

    trace = await engine.trace(QUESTION, AFTER_ALL)
    ferry = await engine.trace("What did the Caspian ferry operator repair?", AFTER_ALL)

    # Every stage ran: a finding, with its supporting quotes, for both questions.
    assert trace.finding is not None and ferry.finding is not None
    assert trace.answer.kind == "answer" and trace.answer.quotes
    assert any(p.article.id == corpus.long_id for p in ferry.passages)
    ran = set(calls.threads)
    for needed in ("analyze", "score_sentences", "passages_for", "supporting_quotes"):
        assert needed in ran, ran
    assert calls.on(threading.get_ident()) == set()


async def test_no_step_of_a_topic_match_runs_on_the_event_loop(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    matcher = TopicMatcher(corpus.embedder, corpus.search.idf, threshold=-1.0)
    matcher.add(Subscription(1, 7, "topic", "Caspian ferry harbour crane", None))
    calls = instrument(monkeypatch, [matcher_module])

    (match,) = await matcher.match_article(corpus.store, corpus.long_id)

    article = await corpus.store.get_article(corpus.long_id)
    assert article is not None and match.quote is not None
    assert "Caspian ferry" in article.text[match.quote[0] : match.quote[1]]
    assert {"term_set", "sentence_spans"} <= set(calls.threads)
    assert calls.on(threading.get_ident()) == set()


async def test_the_loop_runs_while_an_answer_scores_its_evidence(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = AnswerEngine(corpus.store, corpus.search, reader=FakeReader())  # type: ignore[arg-type]
    held = Held(evidence_module.term_set)
    monkeypatch.setattr(evidence_module, "term_set", held)

    answer, _ = await asyncio.gather(
        engine.answer(QUESTION, AFTER_ALL), held.release_from_the_loop()
    )

    assert held.released_in_time is True  # the loop was free while the scoring was held
    assert answer.kind == "answer"


async def test_the_loop_runs_while_a_long_article_is_matched(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    matcher = TopicMatcher(corpus.embedder, corpus.search.idf, threshold=-1.0)
    matcher.add(Subscription(1, 7, "topic", "Caspian ferry harbour crane", None))
    held = Held(matcher_module.sentence_spans)
    monkeypatch.setattr(matcher_module, "sentence_spans", held)

    found, _ = await asyncio.gather(
        matcher.match_article(corpus.store, corpus.long_id), held.release_from_the_loop()
    )

    assert held.released_in_time is True
    assert [m.subscription_id for m in found] == [1]


async def test_subscriptions_change_while_a_match_runs_in_its_thread(
    corpus: Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The match reads the subscriptions as they were when it began; removing and adding
    topics meanwhile (rows move inside the matrix) changes neither it nor later matches."""
    matcher = TopicMatcher(corpus.embedder, corpus.search.idf, threshold=-1.0)
    for i, query in enumerate(["Caspian ferry harbour crane", "volcano eruption", "ferry"]):
        matcher.add(Subscription(i + 1, 100 + i, "topic", query, None))
    article = await corpus.store.get_article(corpus.long_id)
    assert article is not None
    vectors = await matcher.chunk_vectors(corpus.store, article)
    before = {m.subscription_id: m.score for m in matcher.match(article, vectors)}
    held = Held(matcher_module.sentence_spans)
    monkeypatch.setattr(matcher_module, "sentence_spans", held)

    running = asyncio.create_task(matcher.match_article(corpus.store, corpus.long_id))
    assert await asyncio.to_thread(held.entered.wait, HELD_TIMEOUT)
    matcher.remove(1)  # the last row moves into row 0 of the matrix the match reads
    matcher.add(Subscription(9, 109, "topic", "museum opening", None))
    held.released.set()
    during = {m.subscription_id: m.score for m in await running}

    assert held.released_in_time is True
    assert during == pytest.approx(before)
    after = {m.subscription_id for m in matcher.match(article, vectors)}
    assert after == {2, 3, 9}
