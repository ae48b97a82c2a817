"""Building and updating the index pair from the store.

Vectors live in the store keyed by (model, chunk content hash): only chunks whose hash
has no vector yet are embedded. The dense index is updated copy-on-write (the live
one keeps answering); the keyword index is rebuilt from cached tokens, which is cheap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from corpus.store import ChunkIndexRow, Store
from embeddings.dense_index import DenseIndex, choose_kind
from embeddings.embedder import Embedder
from embeddings.index_dir import IndexDirectory, LoadedIndex, Manifest
from embeddings.keyword_index import KeywordIndex
from embeddings.token_cache import TokenCache

Progress = Callable[[str, int, int], None]  # (stage, done, total)
STORE_BATCH = 2048  # chunks embedded between two writes of their vectors


@dataclass(frozen=True)
class IndexReport:
    """What an index update did."""

    chunks: int
    embedded: int
    added: int
    removed: int
    rebuilt: bool
    seconds: float
    kind: str
    # Seconds per stage (embed, store vectors, dense, keyword, save): where an update goes.
    stages: tuple[tuple[str, float], ...] = ()


def embedding_text(row: ChunkIndexRow) -> str:
    """What gets embedded for a chunk: its article's title, then its text."""
    return f"{row.title}\n{row.text}"


class IndexBuilder:
    """Builds a new :class:`LoadedIndex` from the store, reusing what it can."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        directory: IndexDirectory,
        index_kind: str = "auto",
        hnsw_threshold: int = 50_000,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.directory = directory
        self.index_kind = index_kind
        self.hnsw_threshold = hnsw_threshold
        self.tokens = TokenCache()  # BM25 tokens kept between builds
        self._stages: dict[str, float] = {}

    def _clock(self, stage: str, since: float) -> float:
        """Add the time since ``since`` to ``stage``; returns now."""
        now = time.perf_counter()
        self._stages[stage] = self._stages.get(stage, 0.0) + now - since
        return now

    async def vectors(
        self, rows: list[ChunkIndexRow], progress: Progress | None = None
    ) -> tuple[np.ndarray, int]:
        """Vectors for ``rows`` (stored ones reused, the rest embedded and stored)."""
        model = self.embedder.name
        stored = await self.store.vectors_for(model, (r.content_hash for r in rows))
        missing: dict[str, ChunkIndexRow] = {}
        for r in rows:
            if r.content_hash not in stored:
                missing.setdefault(r.content_hash, r)
        todo = list(missing.values())
        # Stored batch by batch: an interrupted build keeps what it embedded.
        for offset in range(0, len(todo), STORE_BATCH):
            batch = todo[offset : offset + STORE_BATCH]

            def report(done: int, total: int, offset: int = offset) -> None:
                if progress:
                    progress("embedding", offset + done, len(todo))

            clock = time.perf_counter()
            fresh = await asyncio.to_thread(
                self.embedder.embed, [embedding_text(r) for r in batch], progress=report
            )
            clock = self._clock("embed", clock)
            pairs = [(r.content_hash, fresh[i].tobytes()) for i, r in enumerate(batch)]
            await self.store.put_vectors(model, pairs)
            stored.update(pairs)
            self._clock("store vectors", clock)
        matrix = np.zeros((len(rows), self.embedder.dim), dtype=np.float32)
        for i, r in enumerate(rows):
            matrix[i] = np.frombuffer(stored[r.content_hash], dtype=np.float32)
        return matrix, len(missing)

    async def build(
        self, current: LoadedIndex | None, progress: Progress | None = None
    ) -> tuple[LoadedIndex, list[ChunkIndexRow], IndexReport]:
        """A new index pair for the store as it is now; saved and swapped in on disk."""
        started = time.perf_counter()
        self._stages = {}
        version = await self.store.corpus_version()
        rows = await self.store.chunk_rows_for_index()
        kind = choose_kind(self.index_kind, len(rows), self.hnsw_threshold)
        wanted = {r.chunk_id for r in rows}
        rebuild = current is None or current.dense.kind != kind
        if rebuild:
            await self.store.prune_vectors()  # vectors no chunk uses any more
            todo_rows = rows
            gone: set[int] = set()
        else:
            assert current is not None
            have = await asyncio.to_thread(current.dense.ids)
            todo_rows = [r for r in rows if r.chunk_id not in have]
            gone = have - wanted
        clock = self._clock("read store", started)
        vectors, embedded = await self.vectors(todo_rows, progress)
        clock = time.perf_counter()
        if progress:
            progress("indexing", 0, len(rows))
        ids = np.array([r.chunk_id for r in todo_rows], dtype=np.int64)
        if rebuild:
            dense = await asyncio.to_thread(DenseIndex.build, self.embedder.dim, kind, ids, vectors)
        else:
            assert current is not None
            dense = await asyncio.to_thread(current.dense.copy)
            dense.remove(gone)
            await asyncio.to_thread(dense.add, ids, vectors)
        clock = self._clock("dense index", clock)
        keyword = await asyncio.to_thread(
            KeywordIndex.build,
            [r.chunk_id for r in rows],
            [f"{r.title}\n{r.text}" for r in rows],
            # The content hash covers the chunk's text, not its article's title.
            [f"{r.content_hash}\x00{r.title}" for r in rows],
            self.tokens,
        )
        manifest = Manifest(
            model=self.embedder.name,
            dimension=self.embedder.dim,
            metric="inner_product",
            kind=kind,
            count=dense.count,
            corpus_version=version,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
            removed=tuple(sorted(dense.removed)),
        )
        clock = self._clock("keyword index", clock)
        loaded = LoadedIndex(manifest, dense, keyword)
        await asyncio.to_thread(self.directory.save, loaded)
        self._clock("save", clock)
        if progress:
            progress("indexing", len(rows), len(rows))
        report = IndexReport(
            chunks=len(rows),
            embedded=embedded,
            added=len(todo_rows),
            removed=len(gone),
            rebuilt=rebuild,
            seconds=time.perf_counter() - started,
            kind=kind,
            stages=tuple(self._stages.items()),
        )
        return loaded, rows, report
