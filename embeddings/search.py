"""Hybrid search: dense and BM25 rankings fused, filtered by date and source, diversified.

``SearchService`` owns the live index pair. Searches read whatever pair is current;
an update builds a new pair (copy-on-write) and swaps it in, so searches never wait
for, or fail during, a re-index.

Per query, the work beyond encoding it is a few milliseconds (RealTime QA, 29.5k chunks,
each question as of its date: about 8 ms before, 3 ms now; ``benchmarks/search_speed.py``
prints it beside the encoder's own figures):

- a filter (the as-of date, sources) becomes the FAISS selector and the BM25 weight mask
  once per index version and filter, not per query (``_Live.prepared``);
- BM25 scores from bm25s' matrix directly (``embeddings.keyword_index``), and exact dense
  search scans compact codes before scoring its best candidates exactly
  (``embeddings.dense_index``); both run in one worker thread after the encoding;
- the hits (at most two per article) are chosen from the index's own chunk -> article
  table, and the store is asked for just those chunks and articles, in one query that
  also reads the corpus version, so chunks and articles read by recent searches are
  reused while nothing changed. Should the store no longer hold a chosen chunk as it was
  indexed, the hits are chosen again from what it holds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, TypeVar

import numpy as np

from corpus.models import Article, Chunk
from corpus.store import Store
from embeddings.dense_index import IdFilter, single_threaded_search
from embeddings.embedder import Embedder
from embeddings.fusion import reciprocal_rank_fusion, weighted_fusion
from embeddings.index_dir import IndexDirectory, IndexMismatch, LoadedIndex
from embeddings.indexer import IndexBuilder, IndexReport, Progress

log = logging.getLogger(__name__)
_T = TypeVar("_T")

CANDIDATES = 50  # per ranking, before fusion
MAX_PER_ARTICLE = 2
PREFER_BOOST = 1.5
FILTER_CACHE = 16  # prepared filters kept per index version (~0.4 MB each at 29.5k chunks)
# Kept between searches while the corpus is unchanged (articles hold their whole text).
CHUNK_CACHE = 2_000
ARTICLE_CACHE = 500


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


class MetaRow(Protocol):
    """What :class:`ChunkMeta` reads of a chunk (``IndexRow`` and ``ChunkIndexRow`` have it)."""

    @property
    def chunk_id(self) -> int: ...
    @property
    def article_id(self) -> int: ...
    @property
    def published_at(self) -> date | None: ...
    @property
    def source(self) -> str: ...


class ChunkMeta:
    """Per-chunk arrays for fast filtering (rebuilt with every index swap)."""

    def __init__(self, rows: Sequence[MetaRow]) -> None:
        self.chunk_ids = np.array([r.chunk_id for r in rows], dtype=np.int64)
        self.article_ids = np.array([r.article_id for r in rows], dtype=np.int64)
        self.days = np.array(
            [r.published_at.toordinal() if r.published_at else 0 for r in rows], dtype=np.int64
        )
        names, codes = np.unique([r.source.lower() for r in rows], return_inverse=True)
        self._source_names: list[str] = names.tolist()
        self._source_codes = codes.reshape(-1)
        ids = self.chunk_ids.tolist()
        self._day_of = dict(zip(ids, self.days.tolist(), strict=True))
        self.article_of: dict[int, int] = dict(zip(ids, self.article_ids.tolist(), strict=True))

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
            codes = [i for i, name in enumerate(self._source_names) if name in wanted]
            keep &= np.isin(self._source_codes, codes)
        return self.chunk_ids[keep]


@dataclass(frozen=True)
class _Prepared:
    """A filter made ready for one index version: allowed ids, FAISS selector, BM25 mask."""

    ids: np.ndarray
    dense: IdFilter
    keyword: np.ndarray


@dataclass
class _Live:
    index: LoadedIndex
    meta: ChunkMeta
    filters: dict[tuple[object, ...], _Prepared] = field(default_factory=dict)

    def prepared(self, filters: SearchFilters) -> _Prepared | None:
        """``filters`` ready for this index (None: no restriction), kept for reuse: the
        as-of date of the bot's questions is today's, of a benchmark's a few dates."""
        if not filters.active:
            return None
        key = (filters.since, filters.until, tuple(sorted({s.lower() for s in filters.sources})))
        found = self.filters.get(key)
        if found is None:
            ids = self.meta.allowed(filters)
            found = _Prepared(ids, self.index.dense.id_filter(ids), self.index.keyword.mask(ids))
            while len(self.filters) >= FILTER_CACHE:
                del self.filters[next(iter(self.filters))]  # the oldest
            self.filters[key] = found
        return found


class SearchService:
    """Hybrid retrieval over the store's chunks, with live, non-blocking re-indexing.

    :meth:`update` waits for the update it makes; what must not wait (handlers, feeds)
    asks ``embeddings.index_updater.IndexUpdater`` instead, which calls it in the background.
    """

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
        self._rows = _RowCache()

    @property
    def busy(self) -> bool:
        """Whether an index update (or a load from disk) is running."""
        return self._update_lock.locked()

    @property
    def indexed_version(self) -> int | None:
        """The corpus version the live index was built from (None: no index yet)."""
        return self._live.index.manifest.corpus_version if self._live else None

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
            rows, _ = await self._builder.rows(full=True)
            self._live = await asyncio.to_thread(self._make_live, loaded, rows)
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
            # An update (not a rebuild) reuses what it can of the pair it replaces.
            previous = live if current is not None else None
            self._live = await asyncio.to_thread(self._make_live, new_index, rows, previous)
            return report

    async def refresh_from_disk(self) -> bool:
        """Swap in the index another process saved (``newsbot ingest`` or ``poll`` from cron
        writing into the same database and index directory) when it was built from the
        store as it is now: loading it costs a read, where an update would embed and
        index what that process already did. False when there is none such (then update)."""
        async with self._update_lock:
            live = self._live
            manifest = await asyncio.to_thread(self.directory.read_manifest)
            if manifest is None or (live is not None and manifest == live.index.manifest):
                return False  # nothing saved, or the one this index came from
            version = await self.store.corpus_version()
            if manifest.corpus_version != version or (
                live is not None and live.index.manifest.corpus_version == version
            ):
                return False
            try:
                manifest.check(self.embedder.name, self.embedder.dim)
            except IndexMismatch:
                return False
            started = time.perf_counter()
            try:
                loaded = await asyncio.to_thread(self.directory.load)
            except Exception:
                log.warning("could not load the index another process saved", exc_info=True)
                return False
            # Saved again between the two reads: take it only if it still fits.
            if loaded is None or loaded.manifest.corpus_version != version:
                return False
            loaded.manifest.check(self.embedder.name, self.embedder.dim)
            rows, _ = await self._builder.rows()
            self._live = await asyncio.to_thread(self._make_live, loaded, rows, live)
            log.info(
                "loaded the index saved at corpus version %d by another process (%.2f s)",
                version,
                time.perf_counter() - started,
            )
            return True

    @staticmethod
    def _make_live(
        index: LoadedIndex, rows: Sequence[MetaRow], previous: _Live | None = None
    ) -> _Live:
        """The searchable pair with what searches need built before it is swapped in."""
        if previous is not None and previous.index.manifest.model != index.manifest.model:
            previous = None
        index.dense.prepare(previous.index.dense if previous is not None else None)
        return _Live(index, ChunkMeta(rows))

    async def _up_to_date(self, live: _Live) -> bool:
        """Whether the live index was built from the store as it is now."""
        return live.index.manifest.corpus_version == await self.store.corpus_version()

    def clear_cache(self) -> None:
        """Forget the chunks and articles kept from earlier searches (they are read again)."""
        self._rows.clear(None)

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
        dense, keyword = await self._rankings(live, query, live.prepared(filters))
        if self.fusion == "weighted":
            fused = weighted_fusion([dense, keyword], [0.5, 0.5])
        else:
            fused = reciprocal_rank_fusion([dense, keyword])
        if filters.prefer:
            fused = live.meta.prefer(fused, filters.prefer)
        return await self._hits(fused, dict(dense), dict(keyword), k, live.meta)

    async def _rankings(
        self, live: _Live, query: str, prepared: _Prepared | None
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        return await asyncio.to_thread(self._rank_prepared, live, query, prepared)

    def _rank_prepared(
        self, live: _Live, query: str, prepared: _Prepared | None
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """Dense and BM25 rankings, one after the other in one thread. (BM25 on a thread of
        its own, beside the encoder or FAISS, measured slower: each waits for the
        interpreter lock the other holds.)"""
        vector = self.embedder.embed([query])[0]
        keyword = live.index.keyword.search(
            query, CANDIDATES, mask=prepared.keyword if prepared is not None else None
        )
        dense = live.index.dense.search(
            vector, CANDIDATES, prepared.dense if prepared is not None else None
        )
        return dense, keyword

    def _rank(
        self, live: _Live, query: str, allowed: np.ndarray | None
    ) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """Both rankings in the calling thread, restricted to ``allowed`` chunk ids."""
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
        dense, keyword = await self._rankings(live, query, live.prepared(filters))
        ranking = dense if use_dense else keyword
        return await self._hits(ranking, dict(dense), dict(keyword), k, live.meta)

    async def _hits(
        self,
        ranking: list[tuple[int, float]],
        dense: dict[int, float],
        keyword: dict[int, float],
        k: int,
        meta: ChunkMeta | None = None,
    ) -> list[Hit]:
        # The store decides what exists: a chunk deleted since the index was built
        # simply does not come back. Only the head of the ranking can reach the top k.
        ranking = ranking[: max(4 * k, 30)]
        if meta is not None:
            found = await self._hits_by_index(ranking, dense, keyword, k, meta)
            if found is not None:
                return found
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

    async def _hits_by_index(
        self,
        ranking: list[tuple[int, float]],
        dense: dict[int, float],
        keyword: dict[int, float],
        k: int,
        meta: ChunkMeta,
    ) -> list[Hit] | None:
        """The hits chosen by the index's chunk -> article table, reading only those
        chunks and articles (one query); None when the store no longer holds one of them
        as indexed (then the caller chooses from what the store holds)."""
        picked: list[tuple[int, float, int]] = []
        per_article: dict[int, int] = {}
        for cid, score in ranking:
            article_id = meta.article_of.get(cid)
            if article_id is None:
                return None
            if per_article.get(article_id, 0) >= MAX_PER_ARTICLE:
                continue
            per_article[article_id] = per_article.get(article_id, 0) + 1
            picked.append((cid, score, article_id))
            if len(picked) >= k:
                break
        chunks, articles = await _chunks_and_articles(
            self.store, [cid for cid, _, _ in picked], list(per_article), self._rows
        )
        hits: list[Hit] = []
        for cid, score, article_id in picked:
            chunk, article = chunks.get(cid), articles.get(article_id)
            if chunk is None or article is None or chunk.article_id != article_id:
                return None
            hits.append(Hit(chunk, article, score, dense.get(cid), keyword.get(cid)))
        return hits


class _RowCache:
    """Chunks and articles read by recent searches, valid while the corpus version they
    were read at is current: the store bumps it in the same transaction as any change to
    a chunk or an article, and every search reads it in the query for the rows it lacks."""

    def __init__(self, chunks: int = CHUNK_CACHE, articles: int = ARTICLE_CACHE) -> None:
        self.limits = {"chunks": chunks, "articles": articles}
        self.version: int | None = None
        self.chunks: dict[int, Chunk] = {}  # oldest first
        self.articles: dict[int, Article] = {}

    def clear(self, version: int | None) -> None:
        self.version = version
        self.chunks.clear()
        self.articles.clear()

    def take(self, rows: dict[int, _T], known: list[int], out: dict[int, _T]) -> None:
        """Copy the ``known`` ids from ``rows`` to ``out``, marking them recently used."""
        for key in known:
            value = rows.pop(key, None)
            if value is not None:
                rows[key] = out[key] = value

    def put(self, rows: dict[int, _T], new: dict[int, _T], limit: int) -> None:
        rows.update(new)
        while len(rows) > limit:
            del rows[next(iter(rows))]  # the least recently used


async def _chunks_and_articles(
    store: Store, chunk_ids: list[int], article_ids: list[int], cache: _RowCache
) -> tuple[dict[int, Chunk], dict[int, Article]]:
    """Chunks and articles by id, as ``Store.get_chunks`` and ``Store.get_articles`` return
    them, in one query (instead of two) that reads no row already in ``cache``."""
    if not chunk_ids:
        return {}, {}
    valid = cache.version is not None
    known_chunks = [c for c in chunk_ids if c in cache.chunks] if valid else []
    known_articles = [a for a in article_ids if a in cache.articles] if valid else []
    want_chunks = [c for c in chunk_ids if c not in cache.chunks] if valid else chunk_ids
    want_articles = [a for a in article_ids if a not in cache.articles] if valid else article_ids
    chunks, articles, version = await store.rows_with_version(want_chunks, want_articles)
    if version is not None and version == cache.version:
        cache.take(cache.chunks, known_chunks, chunks)
        cache.take(cache.articles, known_articles, articles)
    else:  # the corpus changed: what the cache holds may be stale
        cache.clear(version)
        if known_chunks or known_articles:
            chunks.update(await store.get_chunks(known_chunks))
            articles.update(await store.get_articles(known_articles))
    if version is not None:
        cache.put(cache.chunks, chunks, cache.limits["chunks"])
        cache.put(cache.articles, articles, cache.limits["articles"])
    return chunks, articles
