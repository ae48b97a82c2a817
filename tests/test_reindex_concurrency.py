"""Answers and searches keep working, on the index they had, during a full re-index.

The rebuild is held open deterministically: the embedder's batch call (the rebuild's;
queries are embedded one text at a time) blocks on a ``threading.Event`` until the test
releases it. While it is held, questions are answered and searched with bounded
concurrency, as a busy bot would; each must succeed, none of their CPU steps may run on
the event loop (which other chats share), and the rebuild must still be running when they
are all done (the overlap is proven, not hoped for). Then the rebuild is released, and the
rebuilt index answers too, including about an article added just before it began.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from bot.answering.engine import AnswerEngine
from bot.answering.models import Answer
from corpus.ingest import ingest_results
from corpus.models import ArticleDraft
from corpus.readers.dispatch import read_path
from corpus.store import Store
from embeddings.embedder import HashEmbedder, ProgressCallback
from embeddings.index_dir import IndexDirectory
from embeddings.search import SearchService
from tests.test_event_loop import MODULES, instrument

AFTER_ALL = date(2023, 9, 1)
HELD_TIMEOUT = 30.0  # only reached when something is broken (the test then fails)
QUESTIONS = (
    "Who signed with Zolotov?",
    "Which club signed Iranian striker Arash Nouri?",
    "Where did the Caspian ferry deal take effect?",
    "Which museum opened in Moscow?",
    "Who visited the National Guard Memorial Museum?",
)
ASKED = 40  # questions answered while the rebuild is held open
CONCURRENCY = 4
NEW_QUESTION = "Who keeps the Sevan lighthouse?"
NEW_ARTICLE = ArticleDraft(
    title="Sevan lighthouse gets a new keeper",
    text=(
        "Ormond Velasquez became the keeper of the Sevan lighthouse on Monday. "
        "Velasquez said the Sevan lighthouse would be repainted before winter."
    ),
    published_at=date(2023, 8, 20),
    source="Test Wire",
    url="https://example.test/sevan-lighthouse",
)


class GatedEmbedder(HashEmbedder):
    """The hash embedder, whose batch calls (more than one text: an index build) block
    until :attr:`released` is set, once :attr:`armed`. Queries (one text) never block."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.entered = threading.Event()
        self.released = threading.Event()
        self.released_in_time: bool | None = None

    def embed(
        self, texts: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        if self.armed and len(texts) > 1:
            self.entered.set()
            self.released_in_time = self.released.wait(HELD_TIMEOUT)
        return super().embed(texts, progress=progress)


@dataclass
class Setup:
    store: Store
    search: SearchService
    embedder: GatedEmbedder
    engine: AnswerEngine


@pytest_asyncio.fixture
async def setup(tmp_path: Path, samples_dir: Path) -> AsyncIterator[Setup]:
    """The sample corpus indexed with the gated embedder (not armed yet)."""
    store = await Store.open(tmp_path / "newsbot.db")
    try:
        await ingest_results(store, read_path(samples_dir))
        embedder = GatedEmbedder()
        search = SearchService(store, embedder, IndexDirectory(tmp_path / "index"))
        await search.open()
        yield Setup(store, search, embedder, AnswerEngine(store, search))
    finally:
        embedder.released.set()  # never leave a worker thread blocked
        await store.close()


async def ask_all(
    engine: AnswerEngine, questions: Sequence[str], concurrency: int
) -> list[Answer | BaseException]:
    """Answer every question, ``concurrency`` at a time; failures are returned, not raised."""
    limit = asyncio.Semaphore(concurrency)

    async def one(question: str) -> Answer:
        async with limit:
            return await engine.answer(question, AFTER_ALL)

    return await asyncio.gather(*(one(q) for q in questions), return_exceptions=True)


def quoted_titles(answer: Answer) -> set[str]:
    return {q.title for q in answer.quotes + answer.more_quotes}


async def test_questions_are_answered_while_a_full_rebuild_runs(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, search, embedder = setup.engine, setup.search, setup.embedder
    before = {q: await engine.answer(q, AFTER_ALL) for q in QUESTIONS}
    assert all(a.quotes for a in before.values()), before
    # A new article, and no stored vectors (as after a model change): the rebuild embeds
    # every chunk, in a batch call that the gate holds.
    await ingest_results(setup.store, [NEW_ARTICLE])
    async with setup.store.transaction() as db:
        await db.execute("DELETE FROM chunk_vectors")
    embedder.armed = True

    rebuild = asyncio.create_task(search.update(rebuild=True))
    assert await asyncio.to_thread(embedder.entered.wait, HELD_TIMEOUT)
    assert search.busy
    asked = [QUESTIONS[i % len(QUESTIONS)] for i in range(ASKED)]
    calls = instrument(monkeypatch, MODULES)
    answers = await ask_all(engine, [*asked, NEW_QUESTION], CONCURRENCY)
    hits = await search.search(QUESTIONS[0], 5)
    monkeypatch.undo()

    assert not rebuild.done()  # every answer above completed during the rebuild
    assert "score_sentences" in calls.threads
    assert calls.on(threading.get_ident()) == set()  # and left the loop free meanwhile
    failures = [a for a in answers if isinstance(a, BaseException)]
    assert failures == []
    for question, answer in zip(asked, answers, strict=False):
        assert isinstance(answer, Answer)
        assert answer.quotes == before[question].quotes  # the old index, unchanged
    during_new = answers[-1]
    assert isinstance(during_new, Answer)
    assert NEW_ARTICLE.title not in quoted_titles(during_new)  # not indexed yet
    assert hits and all(h.article.title != NEW_ARTICLE.title for h in hits)

    embedder.released.set()
    report = await asyncio.wait_for(rebuild, HELD_TIMEOUT)

    assert embedder.released_in_time is True
    assert report.rebuilt and report.embedded == report.chunks == search.count
    after = await engine.answer(NEW_QUESTION, AFTER_ALL)
    assert after.quotes and after.quotes[0].title == NEW_ARTICLE.title
    for question in QUESTIONS:
        answer = await engine.answer(question, AFTER_ALL)
        assert answer.quotes and answer.quotes == before[question].quotes
