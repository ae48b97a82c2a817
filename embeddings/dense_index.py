"""The dense (FAISS) index: chunk ids as FAISS ids, exact search or HNSW.

Exact search (``IndexIDMap2(IndexFlatIP)``) for corpora below ``hnsw_threshold``
chunks, HNSW above. A ``-1`` result is always dropped. HNSW cannot remove vectors, so
removed ids are filtered at search time (and the caller re-checks every id against
the store anyway).

Exact search of one query reads every stored vector: 45 MB of float32 at 29.5k chunks,
2.2-2.6 ms here, bound by memory bandwidth. From ``SCAN_MIN`` vectors on it runs in two
stages instead: a FAISS fast scan of 4-bit product-quantized codes (two dimensions per
4-bit code, 2.7 MB at 29.5k chunks) picks ``RERANK`` candidates, which are then scored
exactly (FAISS' own kernel on the float32 vectors, so scores are the exact ones). On the
200 RealTime QA questions as of their dates, the top 50 equals exact search's, ids, order
and scores, for every question; 0.3 ms instead of 2.2 (0.6 instead of 2.6 right after
a query encoding, whose model weights push the vectors out of the CPU caches); the codes
take 2.7 MB more memory at 29.5k chunks. A filter that leaves less
than ``MIN_SHARE`` of the vectors, or too few candidates, is searched exactly (FAISS then
reads only the allowed vectors). The codes are built once per index version
(:meth:`DenseIndex.prepare`); their codebook is reused from the previous version while
the corpus has not doubled (training it takes 1-2 s).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import faiss
import numpy as np

HNSW_M = 32
HNSW_EF_SEARCH = 128
SCAN_MIN = 10_000  # exact indexes from this size on search in two stages
RERANK = 500  # candidates of the fast scan scored exactly (at least 10 k; more when filtered)
MIN_SHARE = 0.25  # a filter leaving fewer of the vectors is searched exactly
TRAIN_MAX = 30_000  # vectors sampled to train the codebook


def _member(ids: np.ndarray, size: int) -> np.ndarray:
    """A boolean table over ids ``0..size-1`` (at least) with ``ids`` set."""
    bits = np.zeros(max(size, int(ids.max()) + 1 if len(ids) else 1), dtype=bool)
    bits[ids] = True
    return bits


def _bitmap(ids: np.ndarray) -> np.ndarray:
    """A little-endian bitmap with the bits of ``ids`` set."""
    return np.packbits(_member(ids, 0), bitorder="little")


def single_threaded_search() -> None:
    """One OpenMP thread for FAISS: on 2 cores a single query is faster without threads
    (measured: hybrid search at 100k chunks p50 17 -> 11 ms)."""
    faiss.omp_set_num_threads(1)


def choose_kind(requested: str, count: int, threshold: int) -> str:
    """``flat`` or ``hnsw``: forced by the setting, else by corpus size."""
    if requested in ("flat", "hnsw"):
        return requested
    return "hnsw" if count >= threshold else "flat"


class IdFilter:
    """Allowed chunk ids prepared for one index's filtered searches (a date filter is
    prepared once, not per query). Build it with :meth:`DenseIndex.id_filter`."""

    def __init__(self, owner: DenseIndex, basis: _Scan | None, ids: np.ndarray) -> None:
        self.owner = owner
        self.basis = basis  # the fast scan ``keep`` is for
        self.ids = ids
        self.count = len(ids)
        # Over the scan's positions, for its candidates.
        self.keep = basis.positions(ids) if basis is not None else None
        # Over ids, for FAISS' own search; the selector reads the bitmap, which must live
        # as long as the params.
        self._bitmap = _bitmap(ids)
        selector = faiss.IDSelectorBitmap(len(self._bitmap), faiss.swig_ptr(self._bitmap))
        self.params = (
            faiss.SearchParametersHNSW(sel=selector, efSearch=HNSW_EF_SEARCH)
            if owner.kind == "hnsw"
            else faiss.SearchParameters(sel=selector)
        )


class _Scan:
    """The two-stage exact search: a fast scan of 4-bit codes, then exact scores."""

    def __init__(self, index: faiss.Index, previous: _Scan | None = None) -> None:
        self.flat = faiss.downcast_index(index.index)  # the IndexFlatIP inside the IDMap
        self.ids = faiss.vector_to_array(index.id_map).astype(np.int64)  # position -> id
        n, dim = int(index.ntotal), int(index.d)
        # A view of the stored vectors, only read here (the index is not changing).
        vectors = faiss.rev_swig_ptr(self.flat.get_xb(), n * dim).reshape(n, dim)
        self.codes: faiss.Index
        self.trained_on: int  # vectors the codebook was trained for
        if previous is not None and previous.codes.d == dim and previous.trained_on * 2 >= n:
            self.codes = faiss.clone_index(previous.codes)
            self.codes.reset()
            self.trained_on = previous.trained_on
        else:
            self.codes = faiss.IndexPQFastScan(dim, dim // 2, 4, faiss.METRIC_INNER_PRODUCT)
            sample = np.linspace(0, n - 1, min(n, TRAIN_MAX)).astype(np.int64)
            self.codes.train(np.ascontiguousarray(vectors[sample]))
            self.trained_on = n
        self.codes.add(vectors)

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Whether each position's chunk id is in ``ids``."""
        return _member(ids, int(self.ids.max()) + 1)[self.ids]

    def search(
        self, query: np.ndarray, k: int, allowed: IdFilter | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(chunk ids, exact scores) of the top ``k``, best first; None when the filter
        leaves too little for the scan (search exactly instead)."""
        n = int(self.codes.ntotal)
        share = allowed.count / n if allowed is not None else 1.0
        if share < MIN_SHARE:
            return None
        fetch = min(n, int(max(RERANK, 10 * k) / share))
        _, found = self.codes.search(query, fetch)
        labels = found[0][found[0] >= 0]
        if allowed is not None and allowed.keep is not None:
            labels = labels[allowed.keep[labels]]
        if len(labels) < min(k, allowed.count if allowed is not None else n):
            return None
        labels = np.ascontiguousarray(labels.reshape(1, -1))
        scores = np.empty(labels.shape, dtype=np.float32)
        self.flat.compute_distance_subset(
            1,
            faiss.swig_ptr(query),
            labels.shape[1],
            faiss.swig_ptr(scores),
            faiss.swig_ptr(labels),
        )
        ids = self.ids[labels[0]]
        order = np.lexsort((ids, -scores[0]))[:k]  # best first; ties by id
        return ids[order], scores[0][order]


class DenseIndex:
    """A FAISS inner-product index over unit vectors, keyed by chunk id."""

    def __init__(self, index: faiss.Index, kind: str, removed: set[int] | None = None) -> None:
        self._index = index
        self.kind = kind
        self.removed: set[int] = removed or set()
        self._scan: _Scan | None = None
        self._scan_lock = threading.Lock()

    @classmethod
    def build(cls, dim: int, kind: str, ids: np.ndarray, vectors: np.ndarray) -> DenseIndex:
        """A new index holding ``vectors`` under ``ids``."""
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = 80
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            inner = faiss.IndexFlatIP(dim)
        index = cls(faiss.IndexIDMap2(inner), kind)
        index.add(ids, vectors)
        return index

    @property
    def count(self) -> int:
        """Vectors that can come back from a search."""
        return int(self._index.ntotal) - len(self.removed)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (ids must not be present already)."""
        if len(ids):
            self._scan = None
            self._index.add_with_ids(
                np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64)
            )
            self.removed.difference_update(int(i) for i in ids)

    def remove(self, ids: Iterable[int]) -> None:
        """Remove ids: physically for exact search, by filtering for HNSW."""
        ids = [int(i) for i in ids]
        if not ids:
            return
        if self.kind == "hnsw":
            self.removed.update(ids)
        else:
            self._scan = None
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))

    def copy(self) -> DenseIndex:
        """An independent copy (copy-on-write updates: readers keep the old one)."""
        return DenseIndex(faiss.clone_index(self._index), self.kind, set(self.removed))

    def prepare(self, previous: DenseIndex | None = None) -> None:
        """Build what searches need (the codes of a large exact index) now, rather than
        in the first search, reusing ``previous``' codebook when it fits. Call it before
        the index is searched, not while it is changed."""
        self._scan_index(previous._scan if previous is not None else None)

    def _scan_index(self, previous: _Scan | None = None) -> _Scan | None:
        if self.kind == "hnsw" or self._index.ntotal < SCAN_MIN or self._index.d % 2:
            return None
        scan = self._scan
        if scan is None:
            with self._scan_lock:
                if self._scan is None:
                    self._scan = _Scan(self._index, previous)
                scan = self._scan
        return scan

    def id_filter(self, allowed: np.ndarray) -> IdFilter:
        """``allowed`` chunk ids prepared for :meth:`search` (reusable across queries)."""
        return IdFilter(self, self._scan_index(), np.asarray(allowed, dtype=np.int64))

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | IdFilter | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` (chunk id, cosine) for one unit query vector.

        ``allowed`` restricts the search to those chunk ids (date or source filters),
        given as ids or prepared by :meth:`id_filter`.
        """
        if self._index.ntotal == 0 or k <= 0:
            return []
        scan = self._scan_index()
        params = None
        if allowed is not None:
            if not (
                isinstance(allowed, IdFilter) and allowed.owner is self and allowed.basis is scan
            ):
                allowed = self.id_filter(allowed.ids if isinstance(allowed, IdFilter) else allowed)
            if allowed.count == 0:
                return []
            if allowed.count < self.count:
                params = allowed.params
        vector = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        fetch = min(k + len(self.removed), int(self._index.ntotal))
        found = scan.search(vector, fetch, allowed) if scan is not None else None
        if found is not None:
            ids, scores = found
        else:
            if params is not None and self.kind == "hnsw" and fetch > HNSW_EF_SEARCH:
                params = faiss.SearchParametersHNSW(sel=params.sel, efSearch=fetch)
            found_scores, found_ids = self._index.search(vector, fetch, params=params)
            ids, scores = found_ids[0], found_scores[0]
        hits = [
            (i, s)
            for i, s in zip(ids.tolist(), scores.tolist(), strict=True)
            if i != -1 and i not in self.removed
        ]
        return hits[:k]

    def ids(self) -> set[int]:
        """Every searchable chunk id."""
        id_map = faiss.vector_to_array(self._index.id_map)
        return {int(i) for i in id_map} - self.removed

    def save(self, path: Path) -> None:
        """Write the index to ``path``."""
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, kind: str, removed: set[int]) -> DenseIndex:
        """Read an index written by :meth:`save`."""
        return cls(faiss.read_index(str(path)), kind, removed)
