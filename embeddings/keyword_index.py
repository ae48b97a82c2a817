"""BM25 keyword search over chunk title and text, with the ``bm25s`` package.

Measured here at 100k chunks: bm25s answers in about 1 ms, SQLite FTS5 in 40-70 ms, so
bm25s it is. It has no incremental add: updates rebuild it in a worker thread while the
old one keeps answering. Given a :class:`TokenCache`, a rebuild tokenizes only new texts
(RealTime QA, 29,514 chunks: 5.9 s for a first build, 1.3 s for a rebuild).

The BM25 matrix itself is computed here, in a few vectorized steps, with the same
arithmetic in the same order as ``bm25s.BM25.index`` (so the same scores, bit for bit; the
tests compare): at 3,000 chunks (300k tokens) 30 ms where bm25s' per-document loops took
195 ms, which was most of a one-article index update. Document frequencies are not kept
twice: they are the matrix's column lengths, read when first asked for.

Searches score from bm25s' precomputed matrix directly (the same sums in the same order, so
the same scores) and pick the top k among the documents that have a positive score: at
29.5k chunks 0.15 ms where ``BM25.retrieve`` took 1.3 ms (a thread pool per call, scores
added with ``np.add.at``, a partition of every document).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from embeddings.token_cache import TokenCache
from embeddings.tokenize import tokenize

logging.getLogger("bm25s").setLevel(logging.WARNING)

K1, B = 1.2, 0.75  # BM25 parameters (bm25s' Lucene variant)


def uncached(cache: TokenCache, keys: Sequence[str]) -> list[int]:
    """Positions of ``keys`` whose tokens ``cache`` lacks: the only texts a build needs."""
    return [i for i, key in enumerate(keys) if key not in cache]


def _tokens(cache: TokenCache, key: str, text: str | None) -> np.ndarray:
    """The token ids of ``key``'s text, which may be None when the cache has them."""
    if text is None:
        if key not in cache:
            raise KeyError(f"no text given for {key!r}, and its tokens are not cached")
        text = ""  # not read: the cache answers
    return cache.ids(key, text)


def _bm25_matrix(
    docs: list[np.ndarray], vocab_size: int, k1: float, b: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bm25s' score matrix (CSC: a column per term) for documents of token ids, computed as
    ``bm25s.BM25.build_index_from_ids`` does with the Lucene variant, only vectorized: the
    same float operations in the same order and precision, hence the same scores."""
    n = len(docs)
    lengths = np.fromiter(map(len, docs), dtype=np.int64, count=n)
    average = lengths.mean()  # float64, as bm25s' np.array(lengths).mean()
    terms = np.concatenate(docs).astype(np.int64)
    owner = np.repeat(np.arange(n, dtype=np.int64), lengths)
    # One sort by (term, document): the matrix's own order, and each pair's count (tf).
    pairs, tf = np.unique(terms * n + owner, return_counts=True)
    term = pairs // n
    rows = (pairs - term * n).astype(np.int32)
    df = np.bincount(term, minlength=vocab_size)
    indptr = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    # idf per distinct document frequency with math.log (as bm25s), stored as float32.
    present = np.flatnonzero(df)
    distinct, which = np.unique(df[present], return_inverse=True)
    idf = np.zeros(vocab_size, dtype=np.float32)
    idf[present] = np.array(
        [math.log(1 + (n - d + 0.5) / (d + 0.5)) for d in distinct.tolist()], dtype=np.float32
    )[which]
    # bm25s per document: tf / (k1 * ((1 - b) + b * l_d / l_avg) + tf) in float64 (its tf
    # is float32, its length factor a float64 scalar), times the float32 idf, kept float32.
    norm = k1 * ((1 - b) + b * lengths.astype(np.float64) / average)
    tf64 = tf.astype(np.float32).astype(np.float64)
    data = (idf[term].astype(np.float64) * (tf64 / (norm[rows] + tf64))).astype(np.float32)
    return data, rows, indptr


class KeywordIndex:
    """BM25 over documents whose positions map to chunk ids."""

    def __init__(
        self,
        retriever: bm25s.BM25 | None,
        chunk_ids: np.ndarray,
        doc_freq: dict[str, int] | None = None,
    ) -> None:
        self._retriever = retriever
        self._doc_freq = doc_freq  # None: derived from the matrix when first needed
        self.chunk_ids = np.asarray(chunk_ids, dtype=np.int64)
        self._vocab: dict[str, int] = retriever.vocab_dict if retriever is not None else {}
        # bm25s' eager index: per term (a column), the documents that have it and their
        # BM25 contributions; and, for BM25 variants that score absent terms, those scores.
        matrix = retriever.scores if retriever is not None else {}
        self._data: np.ndarray = matrix.get("data", np.zeros(0, dtype=np.float32))
        self._indices: np.ndarray = matrix.get("indices", np.zeros(0, dtype=np.int64))
        self._indptr: np.ndarray = matrix.get("indptr", np.zeros(1, dtype=np.int64))
        self._absent = getattr(retriever, "nonoccurrence_array", None)
        self._docs = int(matrix.get("num_docs", 0))

    @classmethod
    def build(
        cls,
        chunk_ids: list[int],
        texts: Sequence[str | None],
        keys: list[str] | None = None,
        cache: TokenCache | None = None,
    ) -> KeywordIndex:
        """Index ``texts`` (title and chunk text) under ``chunk_ids``.

        With a ``cache``, texts are tokenized only when their ``keys`` (one per text,
        identifying its content) are new to it; texts no longer indexed leave it. A text
        may be None when its key is cached (see :func:`uncached`): the caller need not
        read it at all.
        """
        if not texts:
            return cls(None, np.zeros(0, dtype=np.int64))
        cache = cache if cache is not None else TokenCache()
        keys = keys if keys is not None else [str(i) for i in range(len(texts))]
        ids = [_tokens(cache, key, text) for key, text in zip(keys, texts, strict=True)]
        cache.retain(set(keys))
        retriever = bm25s.BM25(k1=K1, b=B)
        data, indices, indptr = _bm25_matrix(ids, len(cache.vocab), K1, B)
        retriever.scores = {
            "data": data,
            "indices": indices,
            "indptr": indptr,
            "num_docs": len(ids),
        }
        # As ``BM25.index`` leaves it: a copy of the vocabulary plus its own empty token.
        vocab = dict(cache.vocab)
        vocab.setdefault("", len(vocab))
        retriever.vocab_dict = vocab
        retriever.unique_token_ids_set = set(vocab.values())
        retriever.nonoccurrence_array = None  # the Lucene variant scores absent terms 0
        index = cls(retriever, np.asarray(chunk_ids, dtype=np.int64))
        if np.count_nonzero(np.diff(indptr)) < len(cache.vocab) // 2:
            cache.clear()  # mostly words of deleted texts: start afresh next time
        return index

    @property
    def doc_freq(self) -> dict[str, int]:
        """Documents per (stemmed) word, for the words the indexed texts have."""
        if self._doc_freq is None:
            counts = np.diff(self._indptr)
            words = list(self._vocab)  # ids are insertion order; bm25s' "" comes last
            self._doc_freq = {words[i]: int(counts[i]) for i in np.flatnonzero(counts)}
        return self._doc_freq

    def idf(self, term: str) -> float:
        """BM25's inverse document frequency of a stemmed term (unseen terms count as rare)."""
        n = max(self.count, 1)
        term_id = self._vocab.get(term)
        # Read from the matrix: building the whole table for one word is not needed.
        df = (
            0
            if term_id is None or term_id + 1 >= len(self._indptr)
            else int(self._indptr[term_id + 1] - self._indptr[term_id])
        )
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    @property
    def count(self) -> int:
        """Indexed chunks."""
        return len(self.chunk_ids)

    def mask(self, allowed: np.ndarray) -> np.ndarray:
        """A 0/1 weight mask over documents from allowed chunk ids (reusable across queries)."""
        allowed = np.asarray(allowed, dtype=np.int64)
        if not self.count:
            return np.zeros(0, dtype=np.float32)
        size = max(int(self.chunk_ids.max()), int(allowed.max()) if len(allowed) else 0) + 1
        member = np.zeros(size, dtype=bool)
        member[allowed] = True
        return member[self.chunk_ids].astype(np.float32)

    def search(
        self,
        query: str,
        k: int,
        allowed: np.ndarray | None = None,
        mask: np.ndarray | None = None,
    ) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, BM25 score) with a positive score, best first (ties: the
        lower chunk id first).

        ``allowed`` restricts the search to those chunk ids; ``mask`` is the same as
        prepared by :meth:`mask` (for a filter used by many queries).
        """
        if self._retriever is None or k <= 0:
            return []
        terms = [self._vocab[t] for t in tokenize(query) if t in self._vocab]
        if not terms:
            return []
        if mask is None and allowed is not None:
            mask = self.mask(allowed)
        scores = self.scores(terms)
        if mask is not None:
            scores *= mask
        docs = self._top(scores, min(k, self.count))
        return list(zip(self.chunk_ids[docs].tolist(), scores[docs].tolist(), strict=True))

    def scores(self, term_ids: list[int]) -> np.ndarray:
        """BM25 scores of every document for a query's term ids (a repeated term counts
        twice), as ``bm25s.BM25.get_scores`` computes them."""
        scores = np.zeros(self._docs, dtype=self._data.dtype)
        for term in term_ids:
            start, end = self._indptr[term], self._indptr[term + 1]
            # A term's documents are distinct: plain fancy-index addition is exact.
            scores[self._indices[start:end]] += self._data[start:end]
        if self._absent is not None:
            scores += self._absent[term_ids].sum()
        return scores

    @staticmethod
    def _top(scores: np.ndarray, k: int) -> np.ndarray:
        """Positions of the ``k`` best positive scores, best first, ties by position."""
        docs = np.flatnonzero(scores > 0)
        if len(docs) > k:
            values = scores[docs]
            kth = np.partition(values, len(values) - k)[len(values) - k]
            above = docs[values > kth]
            docs = np.concatenate([above, docs[values == kth][: k - len(above)]])
        return docs[np.lexsort((docs, -scores[docs]))]

    def save(self, directory: Path) -> None:
        """Write the index into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "chunk_ids.npy", self.chunk_ids)
        if self._retriever is not None:
            self._retriever.save(str(directory / "bm25"))
        # Document frequencies are the matrix's column lengths: not written again.
        (directory / "keyword.json").write_text(json.dumps({"count": self.count}))

    @classmethod
    def load(cls, directory: Path) -> KeywordIndex:
        """Read an index written by :meth:`save`."""
        chunk_ids = np.load(directory / "chunk_ids.npy")
        bm25_dir = directory / "bm25"
        retriever = bm25s.BM25.load(str(bm25_dir)) if bm25_dir.exists() else None
        meta = json.loads((directory / "keyword.json").read_text())
        # Indexes written before carry their document frequencies; later ones derive them.
        return cls(retriever, chunk_ids, meta.get("doc_freq"))
