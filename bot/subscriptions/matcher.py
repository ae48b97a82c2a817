"""Topic matching: which followed topics (``/follow <words or a question>``) a new article is about.

For every active topic subscription and one article, two signals:

- semantic: the highest cosine between the topic's query vector and any of the article's
  chunk vectors (chunks are embedded as ``title\ntext``; the query as typed);
- keyword: the IDF-weighted share of the query's distinct stemmed terms (``tokenize``)
  found anywhere in the article's title and text.

``score = 0.7 * semantic + 0.3 * keyword``; an article is pushed for a subscription when
``score >= 0.55``. With the match comes the article's sentence to quote: the one with the
highest IDF-weighted overlap with the query's terms (ties, and no overlap at all: the
earliest).

Calibration (``benchmarks/subscriptions.py``, all-MiniLM-L6-v2@bf16, IDF of the dev corpus'
BM25 index). Labelled set from the RealTime QA dev corpus (2,345 articles, Jan-Mar 2023):
each quiz question whose Google results hold an article containing the correct answer
(192 of 370) gives two topics, the question sentence and a keyword version of it (its 4
highest-IDF content words, e.g. "NFL Damar Hamlin emergency"): 384 topics. Positives: the
articles returned for the question that contain the answer (1,184 pairs); negatives: 50
random other articles per topic, none returned for the question nor containing its answer
(19,200 pairs). "false/1k": matches per 1,000 unrelated articles, over all of them.

Lowest threshold reaching precision 0.95, by semantic weight w::

    w     threshold  precision  recall  false/1k
    1.0   0.48       0.954      0.722   2.70
    0.8   0.50       0.957      0.802   2.63
    0.7   0.52       0.954      0.816   2.80     <- best recall at that precision
    0.6   0.56       0.951      0.795   2.55
    0.5   0.61       0.960      0.744   2.25
    0.0   0.91       0.950      0.418   1.34     (keyword share alone)

w = 0.7 by threshold (question topics / keyword topics)::

    threshold  precision  recall  false/1k   P quest R quest   P kw   R kw
    0.45       0.872      0.901   7.9        0.835   0.949     0.918  0.853
    0.50       0.928      0.833   3.8        0.913   0.909     0.947  0.757
    0.525      0.955      0.811   2.6        0.950   0.892     0.962  0.730
    0.55       0.972      0.759   1.7        0.966   0.858     0.980  0.660   <- chosen
    0.575      0.985      0.709   1.1        0.982   0.812     0.989  0.605
    0.60       0.986      0.655   0.8        0.983   0.775     0.991  0.535

0.55 because an unwanted push costs more than a missed one: precision 0.97 and under 2
false pushes per 1,000 unrelated articles, keeping three quarters of the recall. The
figures are pessimistic: many "false" matches are on-topic articles about the same event
without the quiz answer (COVID travel rules, the Ukraine war, the late Pope Benedict), and
many "missed" positives mention the answer in passing or pair with a clumsy keyword
version ("lost southern kind weather").

Sample corpus (``corpus/samples``, indexed by ``Services.open``; tiny-corpus IDF): "Iran
Russia security cooperation" scores 0.81 on the seed article (semantic 0.72, keyword 1.0)
and 0.61 on the Iran-Belarus security memorandum story, both matched; the nearest others
stay below (Turkish gendarmerie talks 0.47, Russia-Kazakhstan customs memorandum 0.46),
and the football transfer (0.30) and the museum opening (0.21) are far below.
"football transfer Moscow club striker" matches only the football story (0.64), "who
signed with Zolotov?" only the seed (0.58), "boiling point of water" nothing.

Cost (same benchmark, 200 dev articles of 13 chunks on average, on a busy 2-core machine):
``match`` takes 1.5 ms (p50) / 9 ms (p95) with 1,000 subscriptions and 4 ms / 14 ms with
10,000; the p95 is long articles, whose tokenizing and sentence splitting do not depend on
the number of subscriptions. One BLAS thread for the product (see
``_single_threaded_blas``). Keyword IDF weights are taken when a subscription is added.

Never on the event loop: ``match_article`` does the whole match of one article (the
product, tokenizing the article, splitting it into sentences for the quotes) in one worker
thread, on a snapshot of the subscriptions (``_Snapshot``), so ``prepare`` may change them
meanwhile: the matrix rows a running match reads are copied before they are written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from corpus.models import Article
from corpus.store import Store
from corpus.subscription_repo import Subscription, SubscriptionRepo
from corpus.text import sentence_spans
from embeddings.embedder import Embedder
from embeddings.tokenize import WORD_PATTERN, stems_of, term_set, tokenize

log = logging.getLogger(__name__)

SEMANTIC_WEIGHT = 0.7
"""Share of the score that comes from the embedding; the rest is the keyword share."""

DEFAULT_THRESHOLD = 0.55
"""Score at or above which an article is pushed (calibrated, see the module docstring)."""


def query_terms(query: str) -> tuple[str, ...]:
    """The distinct stemmed terms of a topic query, in order of first appearance."""
    return tuple(dict.fromkeys(tokenize(query)))


@dataclass(frozen=True)
class TopicMatch:
    """A subscription that an article matches, with the article's sentence to quote."""

    subscription_id: int
    chat_id: int
    score: float
    semantic: float
    keyword: float
    quote: tuple[int, int] | None  # offsets into article.text


@dataclass(frozen=True)
class _Topic:
    """A subscription as the matcher holds it."""

    sub: Subscription
    terms: tuple[str, ...]
    weights: np.ndarray  # IDF weights of ``terms``, summing to 1 (empty when no terms)


_Flat = tuple[np.ndarray, np.ndarray, np.ndarray]  # rows, term ids, weights


@dataclass(frozen=True)
class _Snapshot:
    """The subscriptions as they were when a match began: what the match reads, from
    whatever thread. Nothing it refers to is written afterwards (see ``TopicMatcher``)."""

    topics: tuple[_Topic, ...]
    matrix: np.ndarray  # rows [:len(topics)] are the topics' unit query vectors
    vocab: dict[str, int]  # grows after the snapshot; ids from ``vocab_size`` on are newer
    vocab_size: int
    flat: _Flat | None  # the topics' terms as flat arrays, None until worked out
    version: int  # the matcher's version it was taken at


class TopicMatcher:
    """Matches articles against every active topic subscription at once.

    Holds the topics' unit query vectors as one matrix and their keyword terms as a flat
    sparse (row, term, weight) list, so one article costs one matrix multiply and one
    ``bincount`` whatever the number of subscriptions.

    A match reads a :class:`_Snapshot`; changes after it never write what it reads: the
    snapshot has its own tuple of the topics, the flat arrays are replaced, not changed,
    the vocabulary only grows, and the matrix is copied before its first in-place write
    after a snapshot (copy on write), so matches in worker threads need no lock against
    ``add``/``remove``.
    """

    def __init__(
        self,
        embedder: Embedder,
        idf: Callable[[str], float],
        threshold: float = DEFAULT_THRESHOLD,
        semantic_weight: float = SEMANTIC_WEIGHT,
    ) -> None:
        self.embedder = embedder
        self.idf = idf
        self.threshold = threshold
        self.semantic_weight = semantic_weight
        self._topics: list[_Topic] = []
        self._rows: dict[int, int] = {}  # subscription id -> row
        self._matrix = np.zeros((0, embedder.dim), dtype=np.float32)
        self._vocab: dict[str, int] = {}
        self._flat: _Flat | None = None  # rows, terms, weights
        self._matrix_shared = False  # a snapshot holds self._matrix: copy it before writing
        self._version = 0  # bumped by every change of the topics
        self._unsaved: dict[int, np.ndarray] = {}  # vectors add() embedded, not yet stored
        self._lock = asyncio.Lock()

    # -- the set of subscriptions ----------------------------------------------------

    def __len__(self) -> int:
        return len(self._topics)

    @property
    def subscriptions(self) -> list[Subscription]:
        """The subscriptions matched now."""
        return [t.sub for t in self._topics]

    async def prepare(self, repo: SubscriptionRepo) -> None:
        """Bring the matcher in line with the repository's active topic subscriptions.

        Only what changed costs anything: gone subscriptions are dropped, new ones get
        their stored query vector or, when there is none for this embedder, one embedded
        in a worker thread and stored.
        """
        async with self._lock:  # two callers at once must not embed the same topics twice
            active = await repo.active("topic")
            new = [s for s in active if not self._holds(s)]
            vectors = await self._query_vectors(repo, new) if new else {}
            await self._save_unsaved(repo, {s.id for s in active} - {s.id for s in new})
            # No awaits from here on: match() never sees a half-updated matcher.
            wanted = {s.id for s in active}
            for sub_id in [i for i in self._rows if i not in wanted]:
                self.remove(sub_id)
            for sub in new:
                self.add(sub, vectors[sub.id])

    async def _save_unsaved(self, repo: SubscriptionRepo, ids: set[int]) -> None:
        """Store the vectors that :meth:`add` embedded, for the subscriptions in ``ids``."""
        todo = {i: v for i, v in self._unsaved.items() if i in ids}
        if todo:
            await repo.put_query_vectors(
                self.embedder.name, {i: v.tobytes() for i, v in todo.items()}
            )
            for sub_id in todo:
                self._unsaved.pop(sub_id, None)

    def _holds(self, sub: Subscription) -> bool:
        row = self._rows.get(sub.id)
        return row is not None and self._topics[row].sub == sub

    async def _query_vectors(
        self, repo: SubscriptionRepo, subs: Sequence[Subscription]
    ) -> dict[int, np.ndarray]:
        """Vectors for ``subs``: stored ones, the rest embedded (in a thread) and stored."""
        name, dim = self.embedder.name, self.embedder.dim
        stored = await repo.query_vectors(name)
        out: dict[int, np.ndarray] = {}
        for sub in subs:
            blob = stored.get(sub.id)
            if blob is not None and len(blob) == dim * 4:
                out[sub.id] = np.frombuffer(blob, dtype=np.float32)
        todo = [s for s in subs if s.id not in out]
        if todo:
            fresh = await asyncio.to_thread(self.embedder.embed, [s.query for s in todo])
            pairs = {s.id: np.asarray(fresh[i], dtype=np.float32) for i, s in enumerate(todo)}
            await repo.put_query_vectors(name, {i: v.tobytes() for i, v in pairs.items()})
            out.update(pairs)
            log.info("embedded %d topic queries", len(todo))
        return out

    def add(self, sub: Subscription, vector: np.ndarray | None = None) -> None:
        """Match ``sub`` from now on (replacing an older version of it).

        Without ``vector`` the query is embedded here, in the calling thread; the vector
        is stored in the repository at the next :meth:`prepare`.
        """
        if sub.kind != "topic":
            raise ValueError(f"subscription {sub.id} is a {sub.kind} subscription, not a topic")
        embedded = vector is None
        if vector is None:
            vector = self.embedder.embed([sub.query])[0]
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.embedder.dim:
            raise ValueError(f"vector of dimension {vector.shape[0]}, not {self.embedder.dim}")
        self.remove(sub.id)
        if embedded:
            self._unsaved[sub.id] = vector
        terms = query_terms(sub.query)
        for term in terms:
            self._vocab.setdefault(term, len(self._vocab))
        self._rows[sub.id] = len(self._topics)
        self._topics.append(_Topic(sub, terms, self._term_weights(terms)))
        self._matrix = _append_row(self._own_matrix(), len(self._topics) - 1, vector)
        self._changed()

    def _term_weights(self, terms: tuple[str, ...]) -> np.ndarray:
        weights = np.array([max(self.idf(t), 0.0) for t in terms], dtype=np.float32)
        total = float(weights.sum())
        return weights / total if total > 0 else np.zeros(len(terms), dtype=np.float32)

    def remove(self, sub_id: int) -> None:
        """Stop matching subscription ``sub_id`` (unknown ids are ignored)."""
        row = self._rows.pop(sub_id, None)
        self._unsaved.pop(sub_id, None)
        if row is None:
            return
        last = len(self._topics) - 1
        if row != last:  # move the last row into the hole
            moved = self._topics[last]
            self._topics[row] = moved
            matrix = self._own_matrix()
            matrix[row] = matrix[last]
            self._rows[moved.sub.id] = row
        self._topics.pop()
        self._changed()

    def _own_matrix(self) -> np.ndarray:
        """The matrix, safe to write in place: copied first when a snapshot holds it."""
        if self._matrix_shared:
            self._matrix = self._matrix.copy()
            self._matrix_shared = False
        return self._matrix

    def _changed(self) -> None:
        self._flat = None
        self._version += 1

    def _snapshot(self) -> _Snapshot:
        """What a match reads, taken on the caller's (the event loop's) thread: O(1) but
        for the tuple of topics (a copy of references)."""
        self._matrix_shared = True
        return _Snapshot(
            tuple(self._topics),
            self._matrix,
            self._vocab,
            len(self._vocab),
            self._flat,
            self._version,
        )

    def _keep_flat(self, snapshot: _Snapshot, flat: _Flat) -> None:
        """Keep the flat arrays a match worked out, unless the topics changed since."""
        if snapshot.version == self._version:
            self._flat = flat

    # -- matching -----------------------------------------------------------------------

    def scores(
        self, article: Article, chunk_vectors: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(score, semantic, keyword) of every subscription, in row order."""
        snapshot = self._snapshot()
        flat = snapshot.flat or _flatten(snapshot)
        self._keep_flat(snapshot, flat)
        return self._scores(snapshot, flat, article, chunk_vectors)

    def _scores(
        self, snapshot: _Snapshot, flat: _Flat, article: Article, chunk_vectors: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        semantic = self._semantic(snapshot, chunk_vectors)
        keyword = _keyword(snapshot, flat, term_set(f"{article.title}\n{article.text}"))
        score = self.semantic_weight * semantic + (1.0 - self.semantic_weight) * keyword
        return score, semantic, keyword

    def _semantic(self, snapshot: _Snapshot, chunk_vectors: np.ndarray) -> np.ndarray:
        """Max cosine of each query vector to any of the article's chunk vectors."""
        n = len(snapshot.topics)
        chunks = np.asarray(chunk_vectors, dtype=np.float32).reshape(-1, self.embedder.dim)
        if n == 0 or len(chunks) == 0:
            return np.zeros(n, dtype=np.float32)
        with _single_threaded_blas():
            return (snapshot.matrix[:n] @ chunks.T).max(axis=1)

    def match(self, article: Article, chunk_vectors: np.ndarray) -> list[TopicMatch]:
        """The subscriptions that ``article`` matches, best first, each with a quote.

        ``chunk_vectors`` are the unit vectors of the article's chunks (embedded as
        ``title\\ntext``) by this matcher's embedder. Runs in the calling thread (CPU
        work: from async code, use :meth:`match_article`, or a worker thread).
        """
        snapshot = self._snapshot()
        matches, flat = self._match(snapshot, article, chunk_vectors)
        if flat is not None:
            self._keep_flat(snapshot, flat)
        return matches

    def _match(
        self, snapshot: _Snapshot, article: Article, chunk_vectors: np.ndarray
    ) -> tuple[list[TopicMatch], _Flat | None]:
        """The matches of ``article`` against ``snapshot`` (safe in any thread), with the
        flat term arrays it used (None when it needed none)."""
        if not snapshot.topics:
            return [], None
        flat = snapshot.flat or _flatten(snapshot)
        score, semantic, keyword = self._scores(snapshot, flat, article, chunk_vectors)
        rows = np.flatnonzero(score >= self.threshold)
        if len(rows) == 0:
            return [], flat
        rows = rows[np.argsort(-score[rows], kind="stable")]
        topics = [snapshot.topics[int(row)] for row in rows]
        quotes = _Sentences(article.text).best(topics)
        matches = [
            TopicMatch(
                subscription_id=topic.sub.id,
                chat_id=topic.sub.chat_id,
                score=float(score[row]),
                semantic=float(semantic[row]),
                keyword=float(keyword[row]),
                quote=quote,
            )
            for row, topic, quote in zip(rows, topics, quotes, strict=True)
        ]
        return matches, flat

    async def match_article(self, store: Store, article_id: int) -> list[TopicMatch]:
        """Match a stored article (its chunk vectors embedded and stored when missing)."""
        if not self._topics:
            return []
        article = await store.get_article(article_id)
        if article is None:
            return []
        vectors = await self.chunk_vectors(store, article)
        # The whole match in one worker thread: tokenizing and splitting a long article
        # into sentences takes milliseconds that other chats' updates must not wait for.
        snapshot = self._snapshot()
        matches, flat = await asyncio.to_thread(self._match, snapshot, article, vectors)
        if flat is not None:
            self._keep_flat(snapshot, flat)
        return matches

    async def chunk_vectors(self, store: Store, article: Article) -> np.ndarray:
        """The article's chunk vectors for this embedder, in chunk order."""
        chunks = await store.chunks_of(article.id)
        name = self.embedder.name
        stored = await store.vectors_for(name, (c.content_hash for c in chunks))
        missing = {c.content_hash: c for c in chunks if c.content_hash not in stored}
        if missing:
            todo = list(missing.values())
            texts = [f"{article.title}\n{c.text}" for c in todo]  # indexer.embedding_text
            fresh = await asyncio.to_thread(self.embedder.embed, texts)
            pairs = [
                (c.content_hash, fresh[i].astype(np.float32).tobytes()) for i, c in enumerate(todo)
            ]
            await store.put_vectors(name, pairs)
            stored.update(pairs)
        matrix = np.zeros((len(chunks), self.embedder.dim), dtype=np.float32)
        for i, chunk in enumerate(chunks):
            matrix[i] = np.frombuffer(stored[chunk.content_hash], dtype=np.float32)
        return matrix


@lru_cache(maxsize=1)
def _blas_controller() -> Any:
    """threadpoolctl's handle on numpy's BLAS, or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - it comes with scikit-learn
        return None
    return ThreadpoolController().select(user_api="blas")


def _single_threaded_blas() -> AbstractContextManager[Any]:
    """One BLAS thread for the small product: on a busy machine OpenBLAS' threads make it
    5-50x slower (measured: 10,000 topics x 13 chunks, 2.6 ms single-threaded, 12-22 ms
    with 2 threads while the other core is busy); about 7 us to set and reset."""
    controller = _blas_controller()
    return controller.limit(limits=1) if controller is not None else nullcontext()


def _flatten(snapshot: _Snapshot) -> _Flat:
    """The snapshot's topic terms as flat (row, term id, weight) arrays."""
    topics, vocab = snapshot.topics, snapshot.vocab
    rows = [np.full(len(t.terms), i, dtype=np.int64) for i, t in enumerate(topics)]
    terms = [
        np.fromiter((vocab[w] for w in t.terms), dtype=np.int64, count=len(t.terms)) for t in topics
    ]
    weights = [t.weights for t in topics]
    return (
        np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
        np.concatenate(terms) if terms else np.zeros(0, dtype=np.int64),
        np.concatenate(weights) if weights else np.zeros(0, dtype=np.float32),
    )


def _keyword(snapshot: _Snapshot, flat: _Flat, article_terms: set[str]) -> np.ndarray:
    """IDF-weighted share of each topic's terms that occur in the article."""
    rows, terms, weights = flat
    size, vocab = snapshot.vocab_size, snapshot.vocab
    present = np.zeros(size, dtype=np.float32)
    # Terms added to the vocabulary after the snapshot belong to no topic of it.
    hits = [i for t in article_terms if (i := vocab.get(t, size)) < size]
    present[hits] = 1.0
    return np.bincount(
        rows, weights=weights * present[terms], minlength=len(snapshot.topics)
    ).astype(np.float32)


def _append_row(matrix: np.ndarray, row: int, vector: np.ndarray) -> np.ndarray:
    """Put ``vector`` at ``row``, growing the matrix by doubling when it is full."""
    if row >= len(matrix):
        grown = np.zeros((max(16, 2 * len(matrix)), matrix.shape[1]), dtype=np.float32)
        grown[: len(matrix)] = matrix
        matrix = grown
    matrix[row] = vector
    return matrix


class _Sentences:
    """An article's sentences and the stemmed terms of each, worked out on first use."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._spans: list[tuple[int, int]] | None = None
        self._terms: list[set[str]] = []

    def _load(self) -> list[tuple[int, int]]:
        if self._spans is None:
            self._spans = sentence_spans(self.text)
            raws = [set(WORD_PATTERN.findall(self.text[s:e].lower())) for s, e in self._spans]
            stem_of = stems_of(set().union(*raws))
            self._terms = [{stem_of[r] for r in rs if r in stem_of} for rs in raws]
        return self._spans

    def best(self, topics: Sequence[_Topic]) -> list[tuple[int, int] | None]:
        """Per topic, the sentence with the highest IDF-weighted overlap with its terms
        (ties: the earliest); None for every topic when the text has no sentences."""
        spans = self._load()
        if not spans:
            return [None] * len(topics)
        needed = {t: j for j, t in enumerate(dict.fromkeys(t for tp in topics for t in tp.terms))}
        present = np.zeros((len(needed), len(spans)), dtype=np.float64)
        for i, sentence_terms in enumerate(self._terms):
            for term in sentence_terms.intersection(needed):
                present[needed[term], i] = 1.0
        weights = np.zeros((len(topics), len(needed)), dtype=np.float64)
        for row, topic in enumerate(topics):
            weights[row, [needed[t] for t in topic.terms]] = topic.weights
        overlap = np.round(weights @ present, 9)  # rounded: equal term sets tie exactly
        return [spans[int(i)] for i in overlap.argmax(axis=1)]  # argmax: the first maximum
