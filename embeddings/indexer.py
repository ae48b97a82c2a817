"""Building and updating the index pair from the store.

Vectors live in the store keyed by (model, chunk content hash): only chunks whose hash
has no vector yet are embedded. The dense index is updated copy-on-write (the live
one keeps answering); the keyword index is rebuilt from cached tokens, which is cheap.

An update reads the chunk ids, and the rows and texts of new chunks only; other texts
are read only when the keyword cache lacks their tokens (after a restart, all of them,
once). A one-article update on 3,133 chunks (hash embedder) took 257 ms of CPU, 196 of
them rebuilding BM25; now 79 (figures in ``embeddings/index_updater.py``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from corpus.store import ChunkIndexRow, IndexRow, Store
from embeddings.dense_index import DenseIndex, choose_kind
from embeddings.embedder import Embedder
from embeddings.index_dir import IndexDirectory, LoadedIndex, Manifest
from embeddings.keyword_index import KeywordIndex, uncached
from embeddings.token_cache import TokenCache

Progress = Callable[[str, int, int], None]  # (stage, done, total)
STORE_BATCH = 2048  # chunks embedded between two writes of their vectors
READ_ATTEMPTS = 3  # readings of the store when chunks are deleted while it is read


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


def embedding_text(row: ChunkIndexRow | IndexRow, text: str | None = None) -> str:
    """What gets embedded for a chunk: its article's title, then its text (given, or the
    row's own: an :class:`IndexRow` carries none)."""
    if text is None:
        assert isinstance(row, ChunkIndexRow), "an IndexRow has no text: pass it"
        text = row.text
    return f"{row.title}\n{text}"


@dataclass
class _Plan:
    """What a build works from, read from the store."""

    kind: str
    rebuild: bool
    rows: list[IndexRow]  # every chunk, by id
    texts: dict[int, str]  # of the chunks to embed or tokenize
    stored: dict[str, bytes]  # vectors by content hash, of the chunks to add
    missing: dict[str, IndexRow]  # a chunk per content hash without a vector: to embed
    have: set[int]  # chunk ids the current index holds (none for a rebuild)


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
        self._tokens_lock = threading.Lock()
        # Chunk rows by id, kept between builds: a chunk's row never changes (a changed
        # article gets new chunks, under new ids: ``Store.save_article``), so an update
        # reads the ids alone (1 ms at 3,000 chunks, where every row took 10-25 ms) and
        # the rows of new chunks. A rebuild reads everything again.
        self._rows: dict[int, IndexRow] = {}
        self._stages: dict[str, float] = {}

    async def rows(self, *, full: bool = False) -> tuple[list[IndexRow], dict[int, str]]:
        """Every chunk's row, by id, and the texts of the new chunks read with theirs."""
        if not full and self._rows:
            ids = await self.store.chunk_id_list()
            new = [cid for cid in ids if cid not in self._rows]
            if len(new) * 4 <= len(ids):
                fresh, texts = await self.store.index_rows_of(new)
                self._rows.update((r.chunk_id, r) for r in fresh)
                # Deleted since (or between the two reads): gone from the rows too.
                keep = set(ids)
                for cid in [c for c in self._rows if c not in keep]:
                    del self._rows[cid]
                return [self._rows[c] for c in ids if c in self._rows], texts
        rows = await self.store.index_rows()
        self._rows = {r.chunk_id: r for r in rows}
        return rows, {}

    def _clock(self, stage: str, since: float) -> float:
        """Add the time since ``since`` to ``stage``; returns now."""
        now = time.perf_counter()
        self._stages[stage] = self._stages.get(stage, 0.0) + now - since
        return now

    def _keyword_index(
        self, chunk_ids: list[int], texts: list[str | None], keys: list[str]
    ) -> KeywordIndex:
        """BM25 over the rows, from the token cache (in a worker thread)."""
        # A cancelled update leaves its thread running: the next build must not change
        # the token cache while that thread still reads and changes it.
        with self._tokens_lock:
            return KeywordIndex.build(chunk_ids, texts, keys, self.tokens)

    async def _embed_missing(
        self,
        todo: list[IndexRow],
        texts: dict[int, str],
        stored: dict[str, bytes],
        progress: Progress | None,
    ) -> None:
        """Embed ``todo`` (one row per content hash lacking a vector) and store the
        vectors, batch by batch: an interrupted build keeps what it embedded."""
        model = self.embedder.name
        for offset in range(0, len(todo), STORE_BATCH):
            batch = todo[offset : offset + STORE_BATCH]

            def report(done: int, total: int, offset: int = offset) -> None:
                if progress:
                    progress("embedding", offset + done, len(todo))

            clock = time.perf_counter()
            fresh = await asyncio.to_thread(
                self.embedder.embed,
                [embedding_text(r, texts[r.chunk_id]) for r in batch],
                progress=report,
            )
            clock = self._clock("embed", clock)
            pairs = [(r.content_hash, fresh[i].tobytes()) for i, r in enumerate(batch)]
            await self.store.put_vectors(model, pairs)
            stored.update(pairs)
            self._clock("store vectors", clock)

    async def _read(self, current: LoadedIndex | None) -> _Plan:
        """The rows, and what else a build needs: stored vectors of the chunks to add, the
        chunks to embed (one per content hash) and the texts to embed or tokenize. A text
        is read after its row: when its chunk was deleted in between, read again."""
        for _attempt in range(READ_ATTEMPTS):
            rows, texts = await self.rows(full=current is None)
            kind = choose_kind(self.index_kind, len(rows), self.hnsw_threshold)
            rebuild = current is None or current.dense.kind != kind
            have: set[int] = set()
            if rebuild:
                await self.store.prune_vectors()  # vectors no chunk uses any more
            elif current is not None:
                have = await asyncio.to_thread(current.dense.ids)
            stored = await self.store.vectors_for(
                self.embedder.name, (r.content_hash for r in rows if r.chunk_id not in have)
            )
            missing: dict[str, IndexRow] = {}
            for r in rows:
                if r.chunk_id not in have and r.content_hash not in stored:
                    missing.setdefault(r.content_hash, r)
            untokenized = uncached(self.tokens, [r.keyword_key for r in rows])
            need = {r.chunk_id for r in missing.values()} | {rows[i].chunk_id for i in untokenized}
            texts.update(await self.store.chunk_texts(need - texts.keys(), len(rows)))
            if not need - texts.keys():
                return _Plan(kind, rebuild, rows, texts, stored, missing, have)
        raise RuntimeError("chunks kept changing while the index read them; try again")

    async def build(
        self, current: LoadedIndex | None, progress: Progress | None = None
    ) -> tuple[LoadedIndex, list[IndexRow], IndexReport]:
        """A new index pair for the store as it is now; saved and swapped in on disk."""
        started = time.perf_counter()
        self._stages = {}
        # The version first: should the store change while this runs, the manifest
        # understates what the index holds, and the next update catches up.
        version = await self.store.corpus_version()
        plan = await self._read(current)
        rows, texts, stored, missing, kind = (
            plan.rows,
            plan.texts,
            plan.stored,
            plan.missing,
            plan.kind,
        )
        todo_rows = [r for r in rows if r.chunk_id not in plan.have]
        gone = plan.have - {r.chunk_id for r in rows}
        clock = self._clock("read store", started)
        await self._embed_missing(list(missing.values()), texts, stored, progress)
        clock = time.perf_counter()
        if progress:
            progress("indexing", 0, len(rows))
        ids = np.array([r.chunk_id for r in todo_rows], dtype=np.int64)
        vectors = np.zeros((len(todo_rows), self.embedder.dim), dtype=np.float32)
        for i, r in enumerate(todo_rows):
            vectors[i] = np.frombuffer(stored[r.content_hash], dtype=np.float32)
        if plan.rebuild:
            dense = await asyncio.to_thread(DenseIndex.build, self.embedder.dim, kind, ids, vectors)
        else:
            assert current is not None
            dense = await asyncio.to_thread(current.dense.copy)
            dense.remove(gone)
            await asyncio.to_thread(dense.add, ids, vectors)
        clock = self._clock("dense index", clock)
        keyword = await asyncio.to_thread(
            self._keyword_index,
            [r.chunk_id for r in rows],
            [f"{r.title}\n{texts[r.chunk_id]}" if r.chunk_id in texts else None for r in rows],
            [r.keyword_key for r in rows],
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
            embedded=len(missing),
            added=len(todo_rows),
            removed=len(gone),
            rebuilt=plan.rebuild,
            seconds=time.perf_counter() - started,
            kind=kind,
            stages=tuple(self._stages.items()),
        )
        return loaded, rows, report
