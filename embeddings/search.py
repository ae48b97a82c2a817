"""Hybrid search: dense and BM25 rankings fused, filtered by date and source, diversified.

``SearchService`` owns the live index pair. Searches read whatever pair is current;
an update builds a new pair (copy-on-write) and swaps it in, so searches never wait
for, or fail during, a re-index.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date

import numpy as np

from corpus.models import Article, Chunk
from corpus.store import ChunkIndexRow, Store
from embeddings.dense_index import single_threaded_search
from embeddings.embedder import Embedder
from embeddings.fusion import reciprocal_rank_fusion, weighted_fusion
from embeddings.index_dir import IndexDirectory, IndexMismatch, LoadedIndex
from embeddings.indexer import IndexBuilder, IndexReport, Progress

log = logging.getLogger(__name__)

CANDIDATES = 50  # per ranking, before fusion
MAX_PER_ARTICLE = 2
PREFER_BOOST = 1.5


@dataclass(frozen=True)
class SearchFilters:
    """Restrict results to a publication-date range and/or some sources; optionally
    prefer a period (a question's "this week") without excluding the rest."""

    since: date | None = None
    until: date | None = None
    sources: tuple[str, ...] = ()
    prefer: tuple[date, date] | None = None

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return bool(self.since or self.until or self.sources)


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk with its article and scores."""

    chunk: Chunk
    article: Article
    score: float
    dense_score: float | None
    keyword_score: float | None


class ChunkMeta:
    """Per-chunk arrays for fast filtering (rebuilt with every index swap)."""

    def __init__(self, rows: list[ChunkIndexRow]) -> None:
        self.chunk_ids = np.array([r.chunk_id for r in rows], dtype=np.int64)
        self.days = np.array(
            [r.published_at.toordinal() if r.published_at else 0 for r in rows], dtype=np.int64
        )
        self.sources = np.array([r.source.lower() for r in rows], dtype=object)
        self._day_of = dict(zip(self.chunk_ids.tolist(), self.days.tolist(), strict=True))

    def prefer(
        self, ranking: list[tuple[int, float]], period: tuple[date, date]
    ) -> list[tuple[int, float]]:
        """Boost chunks published in ``period`` (RealTime QA: MRR@10 0.362 -> 0.377)."""
        since, until = period[0].toordinal(), period[1].toordinal()
        day = self._day_of
        boosted = [
            (cid, score * (PREFER_BOOST if since <= day.get(cid, 0) <= until else 1.0))
            for cid, score in ranking
        ]
        return sorted(boosted, key=lambda item: -item[1])

    def allowed(self, filters: SearchFilters) -> np.ndarray:
        """Chunk ids that pass the filters."""
        keep = np.ones(len(self.chunk_ids), dtype=bool)
        if filters.since:
            keep &= self.days >= filters.since.toordinal()
        if filters.until:
            keep &= (self.days <= filters.until.toordinal()) & (self.days > 0)
        if filters.sources:
            wanted = {s.lower() for s in filters.sources}
            keep &= np.array([s in wanted for s in self.sources], dtype=bool)
        return self.chunk_ids[keep]


@dataclass
class _Live:
    index: LoadedIndex
    meta: ChunkMeta


class SearchService:
    """Hybrid retrieval over the store's chunks, with live, non-blocking re-indexing."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        index_dir: IndexDirectory,
        *,
        index_kind: str = "auto",
        hnsw_threshold: int = 50_000,
        fusion: str = "rrf",
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.directory = index_dir
        self.fusion = fusion
        self._builder = IndexBuilder(store, embedder, index_dir, index_kind, hnsw_threshold)
        single_threaded_search()
        self._live: _Live | None = None
        self._update_lock = asyncio.Lock()

    @property
    def busy(self) -> bool:
        """Whether an index update is running."""
        return self._update_lock.locked()

    @property
    def count(self) -> int:
        """Chunks searchable now."""
        return self._live.index.dense.count if self._live else 0

    async def open(self, progress: Progress | None = None) -> IndexReport | None:
        """Load the index from disk; build or bring it up to date when stale or mismatched."""
        loaded = None
        try:
            loaded = await asyncio.to_thread(self.directory.load)
            if loaded is not None:
                loaded.manifest.check(self.embedder.name, self.embedder.dim)
        except IndexMismatch as exc:
            log.warning("rebuilding the index: %s", exc)
            loaded = None
        except Exception:
            log.exception("the index on disk is unreadable; rebuilding it")
            loaded = None
        if loaded is not None:
            self._live = _Live(loaded, ChunkMeta(await self.store.chunk_rows_for_index()))
            if await self._up_to_date(self._live):
                return None
        return await self.update(rebuild=loaded is None, progress=progress)

    async def update(self, rebuild: bool = False, progress: Progress | None = None) -> IndexReport:
        """Bring the index up to date with the store (or rebuild it), then swap it in."""
        async with self._update_lock:
            live = self._live
            if live and not rebuild and await self._up_to_date(live):
                # Nothing changed: no re-embedding, no BM25 rebuild, no new directory.
                dense = live.index.dense
                return IndexReport(
                    chunks=dense.count,
                    embedded=0,
                    added=0,
                    removed=0,
                    rebuilt=False,
                    seconds=0.0,
                    kind=dense.kind,
                )
            current = live.index if live and not rebuild else None
            new_index, rows, report = await self._builder.build(current, progress)
            self._live = _Live(new_index, ChunkMeta(rows))
            return report

    async def _up_to_date(self, live: _Live) -> bool:
        """Whether the live index was built from the store as it is now."""
        return live.index.manifest.corpus_version == await self.store.corpus_version()

    def idf(self, term: str) -> float:
        """Inverse document frequency of a stemmed term in the current corpus."""
        return self._live.index.keyword.idf(term) if self._live else 1.0

    async def search(
        self, query: str, k: int = 10, filters: SearchFilters | None = None
    ) -> list[Hit]:
        """The top ``k`` chunks for ``query``, at most two per article."""
        live = self._live
        if live is None or not query.strip():
            return []
        filters = filters or SearchFilters()
        allowed = live.meta.allowed(filters) if filters.active else None
        dense, keyword = await asyncio.to_thread(self._rank, live, query, allowed)
        if self.fusion == "weighted":
            fused = weighted_fusion([dense, keyword], [0.5, 0.5])
        else:
            fused = reciprocal_rank_fusion([dense, keyword])
        if filters.prefer:
            fused = live.meta.prefer(fused, filters.prefer)
        return await self._hits(fused, dict(dense), dict(keyword), k)

    def _rank(
        self, live: _Live, query: str, allowed: np.ndarray | None
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        vector = self.embedder.embed([query])[0]
        dense = live.index.dense.search(vector, CANDIDATES, allowed)
        keyword = live.index.keyword.search(query, CANDIDATES, allowed)
        return dense, keyword

    async def dense_only(
        self, query: str, k: int, filters: SearchFilters | None = None
    ) -> list[Hit]:
        """Dense ranking alone (for benchmarks)."""
        return await self._single(query, k, filters, use_dense=True)

    async def keyword_only(
        self, query: str, k: int, filters: SearchFilters | None = None
    ) -> list[Hit]:
        """Keyword ranking alone (for benchmarks)."""
        return await self._single(query, k, filters, use_dense=False)

    async def _single(
        self, query: str, k: int, filters: SearchFilters | None, use_dense: bool
    ) -> list[Hit]:
        live = self._live
        if live is None:
            return []
        filters = filters or SearchFilters()
        allowed = live.meta.allowed(filters) if filters.active else None
        dense, keyword = await asyncio.to_thread(self._rank, live, query, allowed)
        ranking = dense if use_dense else keyword
        return await self._hits(ranking, dict(dense), dict(keyword), k)

    async def _hits(
        self,
        ranking: list[tuple[int, float]],
        dense: dict[int, float],
        keyword: dict[int, float],
        k: int,
    ) -> list[Hit]:
        # The store decides what exists: a chunk deleted since the index was built
        # simply does not come back. Only the head of the ranking can reach the top k.
        ranking = ranking[: max(4 * k, 30)]
        chunks = await self.store.get_chunks(cid for cid, _ in ranking)
        articles = await self.store.get_articles(c.article_id for c in chunks.values())
        hits: list[Hit] = []
        per_article: dict[int, int] = {}
        for cid, score in ranking:
            chunk = chunks.get(cid)
            if chunk is None or chunk.article_id not in articles:
                continue
            if per_article.get(chunk.article_id, 0) >= MAX_PER_ARTICLE:
                continue
            per_article[chunk.article_id] = per_article.get(chunk.article_id, 0) + 1
            hits.append(
                Hit(chunk, articles[chunk.article_id], score, dense.get(cid), keyword.get(cid))
            )
            if len(hits) >= k:
                break
        return hits
