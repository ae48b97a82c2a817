"""Topic subscriptions: how well ``TopicMatcher`` separates on-topic from unrelated news, and
what matching one new article costs with 1,000 and 10,000 subscriptions.

Calibration (precision/recall by threshold) on the RealTime QA dev corpus
(``../shared/data/realtimeqa-2023q1``, ingested and indexed with the real default model in
the data directory that ``benchmarks/retrieval.py`` uses and keeps):

- topics: every scorable quiz question, twice: the question sentence as asked ("question"
  topics) and a short keyword version of it, its 4 highest-IDF content words in their
  order ("keyword" topics, e.g. "NFL Damar Hamlin emergency");
- positives of a topic: the articles that Google returned for its question (the
  ``*_gcs.jsonl`` search results) AND whose text contains the correct answer;
- negatives: ``--negatives`` random other articles per topic (seeded), never one returned
  for that question nor one containing its answer. Precision is at that mix (about 1
  positive to 15 negatives); "false/1k" counts matches among all other articles, per
  1,000 (what a subscriber would see pushed from 1,000 unrelated articles).

Every (topic, article) pair is scored once (semantic = max cosine of the topic vector to
the article's chunk vectors, keyword = IDF-weighted share of the topic's stemmed terms in
the article); the tables then combine them as ``w * semantic + (1 - w) * keyword`` for
several weights ``w`` and thresholds. Then a check on the project's sample corpus
(``corpus/samples``, ingested into a temporary directory with the same model): which
sample articles each probe topic matches at the matcher's defaults.

Matching cost: topics drawn from the question sentences and their keyword versions,
repeated with perturbed vectors (Gaussian noise, re-normalized) and a dropped word to
reach 1,000 and 10,000 subscriptions (vectors precomputed, no embedding in the loop);
``TopicMatcher.match`` timed on ``--articles`` random dev articles (chunk vectors loaded
beforehand): p50/p95/max, with the time to load the subscriptions into the matcher.
Without ``../shared/data`` these sections are skipped with a message (exit 0).

Push latency (``--push-latency N``, default 20 samples; alone with ``--only push``; needs no
``../shared/data``): the real ``newsbot run`` process on a temporary copy of the sample
corpus (``newsbot ingest corpus/samples`` into a temporary data directory), with the fake
Bot API server (``tests/fake_bot_api.py``) and the test news site
(``tests/servers/news_site.py``) in this process, all on 127.0.0.1, and
``NEWSBOT_FEED_CHECK_SECONDS=1``. A group (with an admin member) follows a topic with
``/follow``; a bot admin adds the site's RSS feed with ``/addfeed URL 5``. Per sample a new
matching entry (fictional, unique guid and title, full content in the feed) is published,
then the feed is made due by setting its ``next_run_at`` to now in the SQLite database (a
short WAL transaction; it stands in for the poll interval elapsing): t0 is that commit, t1
the fake server receiving the bot's ``sendMessage`` to the group with the entry's title.
t1 - t0 covers the wait for the due-feed check (0-1 s), the feed fetch, parsing, ingest,
indexing, topic matching, the outbox and the sender's next tick (every 1 s) and the send.
Samples start at least the group pace (``delivery.GROUP_INTERVAL``) plus 0.5 s and a random
0-1 s after the previous push, so neither the per-group pace nor PTB's group rate limit
delays a push and the due-check tick is met at a random phase. The first
``PUSH_WARMUP`` pushes are not measured. Every wait is bounded; the bot is always stopped
(SIGINT, then kill).

    .venv/bin/python benchmarks/subscriptions.py [--months 01] [--sizes 1000,10000]
        [--push-latency 20] [--only calibration|push]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common
from benchmarks.push_latency import push_latency

WEIGHTS = (1.0, 0.8, 0.7, 0.6, 0.5, 0.0)
THRESHOLDS = tuple(round(0.25 + 0.025 * i, 3) for i in range(19))  # 0.25 .. 0.70
TARGET_PRECISION = 0.95
KEYWORD_TERMS = 4
PROBES = (
    "Iran Russia security cooperation",
    "football transfer Moscow club striker",
    "museum exhibition opening",
    "boiling point of water",
    "who signed with Zolotov?",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--months", help="only these months, e.g. 01,02 (default: all)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="data directory holding the indexed dev corpus (default: the one "
        "benchmarks/retrieval.py keeps, $TMPDIR/newsbot-bench-<hash>)",
    )
    parser.add_argument(
        "--negatives", type=int, default=50, help="random negative articles per topic (50)"
    )
    parser.add_argument(
        "--articles", type=int, default=200, help="articles to time matching on (200)"
    )
    parser.add_argument(
        "--sizes", default="1000,10000", help="subscription counts to time (1000,10000)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (7)")
    parser.add_argument("--no-timing", action="store_true", help="only the calibration")
    parser.add_argument(
        "--push-latency",
        type=int,
        default=20,
        metavar="N",
        help="feed entry -> push samples through the real bot process (20; 0 skips it)",
    )
    parser.add_argument(
        "--only",
        choices=("calibration", "push"),
        help="run only the calibration (with the sample check and matching cost) or only "
        "the push latency",
    )
    return parser


# -- the labelled set -------------------------------------------------------------------------


@dataclass
class DevCorpus:
    """The dev articles with their chunk vectors and the labelled topics."""

    articles: dict[int, Any]  # article id -> Article
    vectors: dict[int, Any]  # article id -> (chunks, dim) float32
    topics: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # question | keyword
    positives: list[set[int]] = field(default_factory=list)
    negatives: list[list[int]] = field(default_factory=list)
    others: list[set[int]] = field(default_factory=list)  # every non-related article id


def keyword_version(sentence: str, idf: Any, n: int = KEYWORD_TERMS) -> str:
    """The ``n`` highest-IDF content words of a question, in their order, one per stem."""
    from embeddings.tokenize import tokenize, words

    seen: dict[str, tuple[int, str]] = {}
    for position, word in enumerate(words(sentence)):
        stems = tokenize(word)
        if stems and stems[0] not in seen:
            seen[stems[0]] = (position, word)
    ranked = sorted(seen.items(), key=lambda kv: -idf(kv[0]))[:n]
    return " ".join(word for _, (_, word) in sorted(ranked, key=lambda kv: kv[1][0]))


def retrieved_urls(root: Path, months: tuple[str, ...]) -> dict[str, list[str]]:
    """Question id -> URLs of its Google search results."""
    import json

    out: dict[str, list[str]] = {}
    for path in common.data_files(root, "_gcs.jsonl", months):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                out[str(record["question_id"])] = [
                    str(r.get("url") or "").strip() for r in record.get("search_result") or []
                ]
    return out


async def load_dev(store: Any, embedder_name: str) -> DevCorpus:
    """Every dev article and its chunk vectors, from the store."""
    import numpy as np

    articles = {a.id: a for a in await store.all_articles()}
    rows = await store.chunk_rows_for_index()
    stored = await store.vectors_for(embedder_name, (r.content_hash for r in rows))
    per_article: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        if r.content_hash in stored:
            per_article[r.article_id].append(np.frombuffer(stored[r.content_hash], np.float32))
    vectors = {a: np.vstack(v) for a, v in per_article.items()}
    return DevCorpus({i: a for i, a in articles.items() if i in vectors}, vectors)


def label(
    dev: DevCorpus, root: Path, months: tuple[str, ...], idf: Any, negatives: int, seed: int
) -> None:
    """Topics (question and keyword versions), their positives and sampled negatives."""
    rng = random.Random(seed)
    by_url = {a.url: i for i, a in dev.articles.items() if a.url}
    normalized = {
        i: common.normalize_answer(f"{a.title} {a.text}") for i, a in dev.articles.items()
    }
    all_ids = sorted(dev.articles)
    results = retrieved_urls(root, months)
    for q in common.load_questions(root, months):
        answer = common.normalize_answer(q.answer)
        retrieved = {by_url[u] for u in results.get(q.id, []) if u in by_url}
        positives = {i for i in retrieved if common.contains_answer(normalized[i], answer)}
        if not positives:
            continue
        others = {
            i
            for i in all_ids
            if i not in retrieved and not common.contains_answer(normalized[i], answer)
        }
        for kind, text in (("question", q.sentence), ("keyword", keyword_version(q.sentence, idf))):
            dev.topics.append(text)
            dev.kinds.append(kind)
            dev.positives.append(positives)
            dev.others.append(others)
            dev.negatives.append(rng.sample(sorted(others), min(negatives, len(others))))


def score_pairs(dev: DevCorpus, embedder: Any, idf: Any) -> tuple[Any, Any, list[int]]:
    """(semantic, keyword) of every topic against every article: two (topics, articles) arrays."""
    import numpy as np

    from bot.subscriptions.matcher import TopicMatcher
    from corpus.subscription_repo import Subscription

    vectors = embedder.embed(dev.topics)
    matcher = TopicMatcher(embedder, idf)
    for i, text in enumerate(dev.topics):
        matcher.add(Subscription(i, i, "topic", text, None), vectors[i])
    ids = sorted(dev.articles)
    semantic = np.zeros((len(dev.topics), len(ids)), dtype=np.float32)
    keyword = np.zeros_like(semantic)
    for column, article_id in enumerate(ids):
        _, semantic[:, column], keyword[:, column] = matcher.scores(
            dev.articles[article_id], dev.vectors[article_id]
        )
    return semantic, keyword, ids


# -- the calibration tables --------------------------------------------------------------------


@dataclass
class Pairs:
    """Labelled pairs as flat arrays: semantic, keyword, label, topic kind; plus 'others'."""

    semantic: Any
    keyword: Any
    positive: Any
    kind: Any
    other_semantic: Any  # every (topic, unrelated article) pair, for false/1k
    other_keyword: Any
    other_kind: Any


def flatten(dev: DevCorpus, semantic: Any, keyword: Any, ids: list[int]) -> Pairs:
    """The labelled (topic, article) pairs of the score matrices."""
    import numpy as np

    column = {a: c for c, a in enumerate(ids)}
    labelled: list[tuple[int, int, bool]] = []  # (topic, column, positive)
    o_t, o_a = [], []
    for t in range(len(dev.topics)):
        labelled.extend((t, column[a], True) for a in sorted(dev.positives[t]))
        labelled.extend((t, column[a], False) for a in dev.negatives[t])
        others = np.array(sorted(column[a] for a in dev.others[t]), dtype=np.int64)
        o_t.append(np.full(len(others), t))
        o_a.append(others)
    t_idx, a_idx, pos = zip(*labelled, strict=True)
    kinds = np.array(dev.kinds)
    ot, oa = np.concatenate(o_t), np.concatenate(o_a)
    t_arr, a_arr = np.array(t_idx), np.array(a_idx)
    return Pairs(
        semantic[t_arr, a_arr],
        keyword[t_arr, a_arr],
        np.array(pos),
        kinds[t_arr],
        semantic[ot, oa],
        keyword[ot, oa],
        kinds[ot],
    )


def rates(pairs: Pairs, weight: float, threshold: float, kind: str | None = None) -> tuple:
    """(precision, recall, false matches per 1,000 unrelated articles) at one setting."""
    import numpy as np

    sel = np.ones(len(pairs.positive), bool) if kind is None else pairs.kind == kind
    score = weight * pairs.semantic[sel] + (1 - weight) * pairs.keyword[sel]
    hit, pos = score >= threshold, pairs.positive[sel]
    tp, fp = int((hit & pos).sum()), int((hit & ~pos).sum())
    osel = np.ones(len(pairs.other_kind), bool) if kind is None else pairs.other_kind == kind
    other = weight * pairs.other_semantic[osel] + (1 - weight) * pairs.other_keyword[osel]
    precision = tp / (tp + fp) if tp + fp else 1.0
    return precision, tp / max(1, int(pos.sum())), 1000.0 * float((other >= threshold).mean())


def best_threshold(pairs: Pairs, weight: float) -> tuple[float, float, float, float] | None:
    """The lowest grid threshold with precision >= TARGET_PRECISION: (t, p, r, false/1k)."""
    import numpy as np

    for threshold in np.arange(0.0, 1.0, 0.01):
        p, r, f = rates(pairs, weight, float(threshold))
        if p >= TARGET_PRECISION:
            return float(threshold), p, r, f
    return None


def print_calibration(pairs: Pairs, n_topics: int, weight: float, threshold: float) -> None:
    """The combination summary and the precision/recall table of the chosen combination."""
    n_pos, n_neg = int(pairs.positive.sum()), int((~pairs.positive).sum())
    rows = []
    for w in WEIGHTS:
        best = best_threshold(pairs, w)
        rows.append([f"{w:g}", *(best if best else (None,) * 4)])
    common.print_table(
        ["semantic weight", "threshold", "precision", "recall", "false/1k"],
        rows,
        title=f"Lowest threshold reaching precision {TARGET_PRECISION:.2f}, per combination "
        f"({n_topics} topics, {n_pos:,} positive and {n_neg:,} negative pairs)",
    )
    table = []
    for t in THRESHOLDS:
        row: list[Any] = [f"{t:.3f}" + (" *" if abs(t - threshold) < 1e-9 else "")]
        for kind in (None, "question", "keyword"):
            row.extend(rates(pairs, weight, t, kind))
        table.append(row)
    common.print_table(
        [
            "threshold",
            "P all",
            "R all",
            "f/1k all",
            "P quest",
            "R quest",
            "f/1k quest",
            "P kw",
            "R kw",
            "f/1k kw",
        ],
        table,
        title=f"Precision / recall / false matches per 1k unrelated articles by threshold, "
        f"score = {weight:g} * semantic + {1 - weight:g} * keyword (* = the default)",
    )


# -- the sample corpus --------------------------------------------------------------------------


async def sample_check(embedder: Any) -> None:
    """Which sample articles each probe topic matches, with the matcher's defaults."""
    from bot.subscriptions.matcher import TopicMatcher
    from corpus.subscription_repo import Subscription

    async with common.sample_corpus_services(embedder, "newsbot-subs-") as services:
        matcher = TopicMatcher(embedder, services.search.idf)
        for i, probe in enumerate(PROBES):
            matcher.add(Subscription(i, i, "topic", probe, None))
        articles = await services.store.all_articles()
        found: dict[int, list[str]] = defaultdict(list)
        seed_rows = []
        for article in articles:
            vectors = await matcher.chunk_vectors(services.store, article)
            score, semantic, keyword = matcher.scores(article, vectors)
            seed_rows.append(
                [article.title[:60], float(score[0]), float(semantic[0]), float(keyword[0])]
            )
            for m in matcher.match(article, vectors):
                found[m.subscription_id].append(f"{article.title[:40]} ({m.score:.2f})")
    common.print_table(
        ["sample article", "score", "semantic", "keyword"],
        sorted(seed_rows, key=lambda r: -r[1]),
        title=f"Sample corpus: '{PROBES[0]}' against every article (threshold {matcher.threshold})",
    )
    common.print_table(
        ["probe topic", "matches"],
        [[p, "; ".join(found[i]) or "nothing"] for i, p in enumerate(PROBES)],
        title="Sample corpus: what each probe topic matches",
    )


# -- the matching cost --------------------------------------------------------------------------


def perturbed_topics(dev: DevCorpus, vectors: Any, count: int, seed: int) -> tuple[list, Any]:
    """``count`` (text, vector) topics: the dev topics, then perturbed repeats of them."""
    import numpy as np

    rng = np.random.default_rng(seed)
    texts: list[str] = []
    out = np.zeros((count, vectors.shape[1]), dtype=np.float32)
    for i in range(count):
        base = i % len(dev.topics)
        text, vector = dev.topics[base], vectors[base]
        if i >= len(dev.topics):
            words = text.split()
            if len(words) > 2:
                words.pop(int(rng.integers(len(words))))
            text = " ".join(words)
            vector = vector + rng.normal(0, 0.02, vector.shape).astype(np.float32)
        texts.append(text)
        out[i] = vector / np.linalg.norm(vector)
    return texts, out


def time_matching(
    dev: DevCorpus, embedder: Any, idf: Any, sizes: list[int], n: int, seed: int
) -> None:
    """p50/p95 of TopicMatcher.match per article for each subscription count."""
    from bot.subscriptions.matcher import TopicMatcher
    from corpus.subscription_repo import Subscription

    base_vectors = embedder.embed(dev.topics)
    rng = random.Random(seed)
    sample = rng.sample(sorted(dev.articles), min(n, len(dev.articles)))
    rows = []
    for size in sizes:
        texts, vectors = perturbed_topics(dev, base_vectors, size, seed)
        matcher = TopicMatcher(embedder, idf)
        started = time.perf_counter()
        for i, text in enumerate(texts):
            matcher.add(Subscription(i + 1, 1000 + i, "topic", text, None), vectors[i])
        load_ms = 1000 * (time.perf_counter() - started)
        matcher.match(dev.articles[sample[0]], dev.vectors[sample[0]])  # builds the term arrays
        seconds, matches = [], 0
        for article_id in sample:
            t0 = time.perf_counter()
            found = matcher.match(dev.articles[article_id], dev.vectors[article_id])
            seconds.append(1000 * (time.perf_counter() - t0))
            matches += len(found)
        rows.append(
            [
                size,
                common.percentile(seconds, 50),
                common.percentile(seconds, 95),
                max(seconds),
                matches / len(sample),
                load_ms,
            ]
        )
    chunks = sum(len(dev.vectors[a]) for a in sample) / len(sample)
    common.print_table(
        ["subscriptions", "p50 ms", "p95 ms", "max ms", "matches/article", "load ms"],
        rows,
        title=f"TopicMatcher.match per article ({len(sample)} dev articles, "
        f"{chunks:.1f} chunks each on average; load = add() of every subscription)",
    )


# -- main ---------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace, root: Path) -> None:
    from bot.services import Services
    from bot.settings import Settings
    from bot.subscriptions.matcher import DEFAULT_THRESHOLD, SEMANTIC_WEIGHT

    months = common.parse_months(args.months)
    data_dir = args.data_dir or common.default_cache_dir("realtimeqa", months)
    print(f"data directory: {data_dir}")
    settings = Settings(data_dir=data_dir)
    await common.ensure_corpus(settings.db_path, root, months)
    common.log("opening the services (loads the model; indexes the corpus when needed) ...")
    services = await Services.open(settings)
    try:
        embedder, idf = services.embedder, services.search.idf
        common.print_machine_header(getattr(embedder, "precision", None))
        dev = await load_dev(services.store, embedder.name)
        label(dev, root, months, idf, args.negatives, args.seed)
        common.log(f"{len(dev.articles):,} articles, {len(dev.topics)} topics; scoring ...")
        semantic, keyword, ids = score_pairs(dev, embedder, idf)
        pairs = flatten(dev, semantic, keyword, ids)
        print_calibration(pairs, len(dev.topics), SEMANTIC_WEIGHT, DEFAULT_THRESHOLD)
        await sample_check(embedder)
        if not args.no_timing:
            sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
            time_matching(dev, embedder, idf, sizes, args.articles, args.seed)
    finally:
        await services.close()


def main() -> int:
    args = build_parser().parse_args()
    if args.push_latency < 0:
        print("subscriptions.py: --push-latency must be 0 or more", file=sys.stderr)
        return 2
    try:
        common.parse_months(args.months)
    except ValueError as exc:
        print(f"subscriptions.py: {exc}", file=sys.stderr)
        return 2
    if args.only != "push":
        root = common.SHARED_DATA / common.REALTIMEQA
        if root.is_dir():
            asyncio.run(main_async(args, root))
        else:
            print(
                f"subscriptions.py: calibration skipped: benchmark data not found at {root} "
                "(needs ../shared/data)"
            )
    if args.only != "calibration" and args.push_latency > 0:
        return push_latency(args.push_latency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
