"""BM25 keyword search over chunk title and text, with the ``bm25s`` package.

Measured here at 100k chunks: bm25s answers in about 1 ms, SQLite FTS5 in 40-70 ms, so
bm25s it is. It has no incremental add: updates rebuild it in a worker thread while the
old one keeps answering. Given a :class:`TokenCache`, a rebuild tokenizes only new texts
(RealTime QA, 29,514 chunks: 5.9 s for a first build, 1.3 s for a rebuild).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import bm25s
import numpy as np

from embeddings.token_cache import TokenCache
from embeddings.tokenize import tokenize

logging.getLogger("bm25s").setLevel(logging.WARNING)


class KeywordIndex:
    """BM25 over documents whose positions map to chunk ids."""

    def __init__(
        self,
        retriever: bm25s.BM25 | None,
        chunk_ids: np.ndarray,
        doc_freq: dict[str, int] | None = None,
    ) -> None:
        self._retriever = retriever
        self.doc_freq = doc_freq or {}
        self.chunk_ids = np.asarray(chunk_ids, dtype=np.int64)
        self._vocab: dict[str, int] = retriever.vocab_dict if retriever is not None else {}

    @classmethod
    def build(
        cls,
        chunk_ids: list[int],
        texts: list[str],
        keys: list[str] | None = None,
        cache: TokenCache | None = None,
    ) -> KeywordIndex:
        """Index ``texts`` (title and chunk text) under ``chunk_ids``.

        With a ``cache``, texts are tokenized only when their ``keys`` (one per text,
        identifying its content) are new to it; texts no longer indexed leave it.
        """
        if not texts:
            return cls(None, np.zeros(0, dtype=np.int64))
        cache = cache if cache is not None else TokenCache()
        keys = keys if keys is not None else [str(i) for i in range(len(texts))]
        ids = [cache.ids(key, text) for key, text in zip(keys, texts, strict=True)]
        cache.retain(set(keys))
        retriever = bm25s.BM25(k1=1.2, b=0.75)
        # A copy: bm25s adds its own empty token to the vocabulary it is given.
        retriever.index((ids, dict(cache.vocab)), show_progress=False)
        words = list(cache.vocab)  # ids are insertion order
        present = np.bincount(np.concatenate([np.unique(doc) for doc in ids]), minlength=len(words))
        doc_freq = {words[i]: int(present[i]) for i in np.flatnonzero(present)}
        if len(doc_freq) < len(words) // 2:
            cache.clear()  # mostly words of deleted texts: start afresh next time
        return cls(retriever, np.asarray(chunk_ids, dtype=np.int64), doc_freq)

    def idf(self, term: str) -> float:
        """BM25's inverse document frequency of a stemmed term (unseen terms count as rare)."""
        n = max(self.count, 1)
        df = self.doc_freq.get(term, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    @property
    def count(self) -> int:
        """Indexed chunks."""
        return len(self.chunk_ids)

    def mask(self, allowed: np.ndarray) -> np.ndarray:
        """A 0/1 weight mask over documents from allowed chunk ids."""
        return np.isin(self.chunk_ids, allowed).astype(np.float32)

    def search(
        self, query: str, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, BM25 score) with a positive score."""
        if self._retriever is None or k <= 0:
            return []
        terms = [t for t in tokenize(query) if t in self._vocab]
        if not terms:
            return []
        mask = self.mask(allowed) if allowed is not None else None
        docs, scores = self._retriever.retrieve(
            [terms],
            k=min(k, self.count),
            show_progress=False,
            n_threads=1,
            weight_mask=mask,
        )
        return [
            (int(self.chunk_ids[d]), float(s))
            for d, s in zip(docs[0], scores[0], strict=True)
            if s > 0
        ]

    def save(self, directory: Path) -> None:
        """Write the index into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "chunk_ids.npy", self.chunk_ids)
        if self._retriever is not None:
            self._retriever.save(str(directory / "bm25"))
        (directory / "keyword.json").write_text(
            json.dumps({"count": self.count, "doc_freq": self.doc_freq})
        )

    @classmethod
    def load(cls, directory: Path) -> KeywordIndex:
        """Read an index written by :meth:`save`."""
        chunk_ids = np.load(directory / "chunk_ids.npy")
        bm25_dir = directory / "bm25"
        retriever = bm25s.BM25.load(str(bm25_dir)) if bm25_dir.exists() else None
        meta = json.loads((directory / "keyword.json").read_text())
        return cls(retriever, chunk_ids, meta.get("doc_freq", {}))
