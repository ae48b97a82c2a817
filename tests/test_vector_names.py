"""Vectors are named by their model alone: data directories of earlier versions, which
named them "model@precision", keep their vectors and their index."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from corpus.ingest import ingest_results
from corpus.readers import read_path
from corpus.store import Store
from embeddings.embedder import HashEmbedder, ProgressCallback
from embeddings.index_dir import IndexDirectory
from embeddings.search import SearchService
from tests.conftest import ROOT


class CountingEmbedder(HashEmbedder):
    """The hash embedder, counting the texts it embeds."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.embedded = 0

    def embed(
        self, texts: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        self.embedded += len(texts)
        return super().embed(texts, progress=progress)


async def test_an_earlier_precision_named_data_dir_is_neither_reembedded_nor_rebuilt(
    tmp_path: Path,
) -> None:
    db = tmp_path / "newsbot.db"
    store = await Store.open(db)
    try:
        await ingest_results(store, read_path(ROOT / "corpus" / "samples"))
        legacy = SearchService(
            store, HashEmbedder(name="hash-embedder@bf16"), IndexDirectory(tmp_path / "index")
        )
        await legacy.open()
        chunks = legacy.count
    finally:
        await store.close()
    # Back to the schema an earlier version left: its vectors named "model@precision".
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT DISTINCT model FROM chunk_vectors").fetchall() == [
            ("hash-embedder@bf16",)
        ]
        # Migration 5 came later: undo it too, so that opening applies 4 and 5 again.
        conn.executescript(
            "DROP TABLE more_quotes; DROP TABLE route_queue;"
            " ALTER TABLE channel_sources DROP COLUMN status;"
            " ALTER TABLE chats DROP COLUMN digest_failures;"
            " ALTER TABLE chats DROP COLUMN digest_retry_at;"
        )
        conn.execute("PRAGMA user_version = 3")
    store = await Store.open(db)
    try:
        rows = await store.fetchall("SELECT DISTINCT model FROM chunk_vectors")
        assert [tuple(r) for r in rows] == [("hash-embedder",)]
        counting = CountingEmbedder(name="hash-embedder")
        search = SearchService(store, counting, IndexDirectory(tmp_path / "index"))
        report = await search.open()
        assert report is None, "the index of the earlier version is still current"
        assert search.count == chunks and counting.embedded == 0
        hits = await search.search("Zolotov memorandum", 3)
        assert hits and counting.embedded == 1  # the query only
    finally:
        await store.close()
