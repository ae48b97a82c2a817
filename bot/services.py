"""The composition root: open the long-lived services once, close them once.

The CLI, the benchmarks and the Telegram application all build their services here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.settings import Settings
from corpus.fetch import UrlPolicy
from corpus.store import Store
from embeddings.embedder import Embedder, load_embedder
from embeddings.index_dir import IndexDirectory
from embeddings.indexer import Progress
from embeddings.search import SearchService

if TYPE_CHECKING:
    from bot.answering.engine import AnswerEngine
    from bot.answering.reader import SpanReader
    from bot.subscriptions.matcher import TopicMatcher


def url_policy(settings: Settings) -> UrlPolicy:
    """Limits and address rules for every fetch (``/ingest``, feeds, article pages)."""
    return UrlPolicy(
        max_bytes=int(settings.fetch_max_mb * 1_000_000),
        timeout=settings.fetch_timeout,
        allowed_hosts=settings.url_allowlist,
    )


@dataclass
class Services:
    """Store, embedder and search service for one process."""

    settings: Settings
    store: Store
    embedder: Embedder
    search: SearchService
    _matcher: TopicMatcher | None = field(default=None, repr=False)
    _reader: SpanReader | None = field(default=None, repr=False)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        progress: Progress | None = None,
    ) -> Services:
        """Open the store, load the model (in a thread) and the index (updating it if stale)."""
        store = await Store.open(settings.db_path)
        try:
            if embedder is None:
                embedder = await asyncio.to_thread(
                    load_embedder, settings.model, settings.embed_precision, settings.cache_dir
                )
            search = SearchService(
                store,
                embedder,
                IndexDirectory(settings.index_dir),
                index_kind=settings.index_kind,
                hnsw_threshold=settings.hnsw_threshold,
            )
            await search.open(progress)
        except BaseException:
            await store.close()
            raise
        return cls(settings, store, embedder, search)

    async def answers(self) -> AnswerEngine:
        """The answer engine over these services (generative when an LLM is configured)."""
        from bot.answering.engine import AnswerEngine
        from bot.answering.generative import GenerativeAnswerer, LlmConfig

        llm = LlmConfig.from_settings(self.settings)
        return AnswerEngine(
            self.store,
            self.search,
            reader=await self.reader(),
            generator=GenerativeAnswerer(llm) if llm else None,
        )

    async def reader(self) -> SpanReader | None:
        """The span reader, loaded once (None when turned off or its weights are missing:
        answers are then the evidence quotes alone, and the log says why)."""
        from bot.answering.reader import load_reader

        if self._reader is None:
            self._reader = await asyncio.to_thread(load_reader, self.settings)
        return self._reader

    async def topic_matcher(self) -> TopicMatcher:
        """The subscription matcher, its topic vectors brought up to date."""
        from bot.subscriptions.matcher import TopicMatcher
        from corpus.subscription_repo import SubscriptionRepo

        if self._matcher is None:
            self._matcher = TopicMatcher(self.embedder, self.search.idf)
        await self._matcher.prepare(SubscriptionRepo(self.store))
        return self._matcher

    async def close(self) -> None:
        """Release everything."""
        await self.store.close()
