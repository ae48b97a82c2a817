"""Search speed and memory at 10k and 100k chunks, and embedding throughput.

Synthetic corpora are built from the real RealTime QA chunks (``../shared/data``):
the real chunks are embedded once with the default model (their vectors are kept in a
persistent data directory shared with ``benchmarks/retrieval.py``, so later runs skip
that), then sampled (sizes up to the real count) or replicated with small Gaussian
noise on the vectors (re-normalized) and about 10% of the words dropped from the text
(larger sizes), so vectors and texts stay realistic without embedding 100k texts. Each
replica keeps its original's publication date, for the as-of filter.

For each size, with the project's own classes (``DenseIndex``, ``KeywordIndex``,
``ChunkMeta``, the fusion function), timing each query the way ``SearchService._rank``
and ``SearchService.search`` do (query encoding with the real model included):

- index build time: FAISS flat, FAISS HNSW, BM25, and a BM25 rebuild whose tokens are
  cached (what an update that adds a few chunks costs);
- query latency p50/p95 over the RealTime QA question sentences (200 by default):
  query encoding alone, dense only (flat, HNSW), keyword only, hybrid (flat, HNSW),
  and hybrid with the as-of date filter the bot uses;
- recall@10 of HNSW against exact (flat) search, without and with the date filter;
- memory: serialized index sizes and the process RSS after the builds.

Then ``SearchService.search`` end to end on the real corpus (including the SQLite fetch),
and encode throughput (chunks/s) of the model in fp32 and bf16 on a few hundred real
chunks. Without ``../shared/data`` the benchmark exits 0 with a message.

First of all, the search overhead: on the real corpus (29,514 chunks), each question as
the answer engine asks it (its text, as of its date, preferring the period it names), the
query encoding alone and ``SearchService.search`` one after the other, same run, same
questions; p50/p95 of both and of the difference, against the floor: search p50 at most
encoding p50 + 3 ms, p95 at most encoding p95 + 8 ms. Two passes: the first with the
search's row cache empty (each question asked once), then the same questions again.

    .venv/bin/python benchmarks/search_speed.py [--sizes 10000,100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common


def sizes_arg(value: str) -> list[int]:
    try:
        sizes = [int(v.replace("_", "").replace("k", "000")) for v in value.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"sizes must be numbers like 10000,100000: {value!r}"
        ) from None
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError("sizes must be at least 100")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        type=sizes_arg,
        default=[10_000, 100_000],
        help="synthetic corpus sizes in chunks (default 10000,100000; 10k style accepted)",
    )
    parser.add_argument(
        "--queries", type=int, default=200, help="number of questions used as queries (200)"
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=0.025,
        help="std. dev. of the per-dimension noise on replicated vectors (0.025: cosine ~0.9)",
    )
    parser.add_argument(
        "--encode-chunks",
        type=int,
        default=256,
        help="chunks embedded per precision for the throughput table (256; 0 skips it)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="data directory holding (or to hold) the embedded real corpus; "
        "default: the one benchmarks/retrieval.py uses, $TMPDIR/newsbot-bench-<hash>",
    )
    parser.add_argument(
        "--no-service", action="store_true", help="skip the SearchService end-to-end table"
    )
    parser.add_argument(
        "--faiss-threads",
        type=int,
        default=1,
        help="FAISS OpenMP threads (default 1, as the search service sets; 0: FAISS' default)",
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (7)")
    return parser


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def latency_row(name: str, seconds: list[float]) -> list[object]:
    ms = [1000 * s for s in seconds]
    return [name, common.percentile(ms, 50), common.percentile(ms, 95), sum(ms) / len(ms)]


def evenly_spaced(items: list, n: int) -> list:
    if n >= len(items):
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def synthesize(rows: list, vectors, size: int, noise: float, rng):
    """(ids, vectors, texts, index rows) of a synthetic corpus of ``size`` chunks."""
    import numpy as np

    from corpus.store import ChunkIndexRow
    from embeddings.indexer import embedding_text

    n_real = len(rows)
    if size <= n_real:
        base = np.sort(rng.choice(n_real, size, replace=False))
        replica = np.zeros(size, dtype=bool)
    else:
        base = np.concatenate([np.arange(n_real), rng.integers(0, n_real, size - n_real)])
        replica = np.arange(size) >= n_real
    vecs = vectors[base].astype(np.float32, copy=True)
    if replica.any():
        count = int(replica.sum())
        vecs[replica] += rng.normal(0.0, noise, (count, vecs.shape[1])).astype(np.float32)
        vecs[replica] /= np.linalg.norm(vecs[replica], axis=1, keepdims=True)
    texts = []
    for b, rep in zip(base, replica, strict=True):
        text = embedding_text(rows[b])
        if rep:
            words = text.split(" ")
            keep = rng.random(len(words)) >= 0.1
            text = " ".join(w for w, k in zip(words, keep, strict=True) if k)
        texts.append(text)
    ids = np.arange(1, size + 1, dtype=np.int64)
    meta_rows = [
        ChunkIndexRow(int(i), rows[b].article_id, "", "", "", rows[b].published_at, rows[b].source)
        for i, b in zip(ids, base, strict=True)
    ]
    return ids, vecs, texts, meta_rows


def bench_size(size, rows, vectors, embedder, queries, query_vectors, args, rng):
    """Build the indexes for one size and return (build, latency, quality rows)."""
    import faiss
    import numpy as np

    from embeddings.dense_index import DenseIndex
    from embeddings.fusion import reciprocal_rank_fusion
    from embeddings.keyword_index import KeywordIndex
    from embeddings.search import CANDIDATES, ChunkMeta, SearchFilters
    from embeddings.token_cache import TokenCache

    common.log(f"[{size:,}] synthesizing ...")
    ids, vecs, texts, meta_rows = synthesize(rows, vectors, size, args.noise, rng)
    meta = ChunkMeta(meta_rows)
    dim = vecs.shape[1]
    gc.collect()
    rss0 = common.rss_mb()

    common.log(f"[{size:,}] building flat, HNSW and BM25 ...")
    flat, flat_s = timed(lambda: DenseIndex.build(dim, "flat", ids, vecs))
    rss_flat = common.rss_mb()
    hnsw, hnsw_s = timed(lambda: DenseIndex.build(dim, "hnsw", ids, vecs))
    rss_hnsw = common.rss_mb()
    tokens, keys = TokenCache(), [str(i) for i in ids.tolist()]
    keyword, kw_s = timed(lambda: KeywordIndex.build(ids.tolist(), texts, keys, tokens))
    gc.collect()
    rss_kw = common.rss_mb()
    _, kw_cached_s = timed(lambda: KeywordIndex.build(ids.tolist(), texts, keys, tokens))
    flat_mb = faiss.serialize_index(flat._index).nbytes / 2**20
    hnsw_mb = faiss.serialize_index(hnsw._index).nbytes / 2**20
    rss_codes = common.rss_mb()
    _, codes_s = timed(flat.prepare)  # the fast-scan codes of exact search (if large enough)
    codes = flat._scan.codes if flat._scan is not None else None
    codes_mb = faiss.serialize_index(codes).nbytes / 2**20 if codes is not None else None
    build = [
        [size, "flat", flat_s, size / flat_s, flat_mb, rss_flat - rss0],
        [
            size,
            "flat: fast-scan codes",
            codes_s,
            size / codes_s,
            codes_mb,
            common.rss_mb() - rss_codes,
        ],
        [size, "hnsw", hnsw_s, size / hnsw_s, hnsw_mb, rss_hnsw - rss_flat],
        [size, "bm25", kw_s, size / kw_s, None, rss_kw - rss_hnsw],
        [size, "bm25, tokens cached", kw_cached_s, size / kw_cached_s, None, None],
    ]

    def embed(q):
        return embedder.embed([q.sentence])[0]

    def dense(index):
        return lambda q: index.search(embed(q), CANDIDATES)

    def keyword_only(q):
        return keyword.search(q.sentence, CANDIDATES)

    def hybrid(index, filtered):
        def run(q):
            allowed = meta.allowed(SearchFilters(until=q.as_of)) if filtered else None
            v = embed(q)
            d = index.search(v, CANDIDATES, allowed)
            k = keyword.search(q.sentence, CANDIDATES, allowed)
            return reciprocal_rank_fusion([d, k])

        return run

    variants = [
        ("query encoding only", embed),
        ("dense flat", dense(flat)),
        ("dense hnsw", dense(hnsw)),
        ("keyword", keyword_only),
        ("hybrid flat", hybrid(flat, False)),
        ("hybrid hnsw", hybrid(hnsw, False)),
        ("hybrid flat + as-of", hybrid(flat, True)),
        ("hybrid hnsw + as-of", hybrid(hnsw, True)),
    ]
    latency = []
    for name, fn in variants:
        common.log(f"[{size:,}] timing {name} ...")
        for q in queries[:5]:  # warm-up
            fn(q)
        seconds = []
        for q in queries:
            _, s = timed(lambda fn=fn, q=q: fn(q))
            seconds.append(s)
        latency.append([size, *latency_row(name, seconds)])

    recalls = {False: [], True: []}
    for q, v in zip(queries, query_vectors, strict=True):
        for filtered in (False, True):
            allowed = meta.allowed(SearchFilters(until=q.as_of)) if filtered else None
            exact = [i for i, _ in flat.search(v, 10, allowed)]
            approx = {i for i, _ in hnsw.search(v, 10, allowed)}
            if exact:
                recalls[filtered].append(len(approx.intersection(exact)) / len(exact))
    allowed_share = float(
        np.mean([len(meta.allowed(SearchFilters(until=q.as_of))) / size for q in queries])
    )
    quality = [
        [size, "none", float(np.mean(recalls[False])), 1.0],
        [size, "as-of date", float(np.mean(recalls[True])), allowed_share],
    ]
    memory = [size, rss_kw, common.peak_rss_mb()]
    return build, latency, quality, memory


async def service_latency(services, queries) -> list[list[object]]:
    """``SearchService.search`` end to end on the real corpus, with and without the filter."""
    from embeddings.search import SearchFilters

    service = services.search
    out = []
    for name, filtered in (("search", False), ("search + as-of", True)):
        for q in queries[:5]:
            await service.search(q.sentence, 10)
        seconds = []
        for q in queries:
            filters = SearchFilters(until=q.as_of) if filtered else None
            started = time.perf_counter()
            await service.search(q.sentence, 10, filters)
            seconds.append(time.perf_counter() - started)
        out.append([service.count, *latency_row(name, seconds)])
    return out


async def search_overhead(services, questions) -> list[list[object]]:
    """Query encoding alone, then ``SearchService.search`` as the answer engine calls it,
    per question; two passes (row cache empty, then the same questions again)."""
    from bot.answering.question import analyze
    from bot.answering.timeparse import resolve_time
    from embeddings.search import SearchFilters

    service, embedder = services.search, services.embedder
    asked = []
    for q in questions:
        text = analyze(q.sentence).text
        window = resolve_time(text, q.as_of)
        prefer = (window.since, window.until) if window else None
        asked.append((text, SearchFilters(until=q.as_of, prefer=prefer)))
    for text, filters in asked[-5:]:  # warm-up (its rows leave the cache below)
        embedder.embed([text])
        await service.search(text, 20, filters)
    service.clear_cache()
    rows: list[list[object]] = []
    for name in ("first pass", "again"):
        encode, search = [], []
        for text, filters in asked:
            started = time.perf_counter()
            embedder.embed([text])
            encode.append(1000 * (time.perf_counter() - started))
            started = time.perf_counter()
            await service.search(text, 20, filters)
            search.append(1000 * (time.perf_counter() - started))
        e50, e95 = common.percentile(encode, 50), common.percentile(encode, 95)
        s50, s95 = common.percentile(search, 50), common.percentile(search, 95)
        met = s50 <= e50 + 3 and s95 <= e95 + 8
        rows.append([name, e50, e95, s50, s95, s50 - e50, s95 - e95, "met" if met else "NOT met"])
    return rows


def native_bf16() -> bool:
    """Whether the CPU has bfloat16 matrix instructions (AMX or AVX512-BF16)."""
    try:
        from embeddings.precision import cpu_flags
    except ImportError:  # older tree
        from embeddings.embedder import cpu_has_bf16  # type: ignore[attr-defined]

        return bool(cpu_has_bf16())
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


def encode_throughput(embedder, model: str, texts: list[str], queries) -> list[list[object]]:
    """Chunks/s and single-query latency in fp32 and bf16."""
    from embeddings.embedder import SentenceTransformerEmbedder

    rows = []
    for precision in ("fp32", "bf16"):
        if getattr(embedder, "precision", None) == precision:
            current = embedder
        else:
            common.log(f"loading the model in {precision} ...")
            current = SentenceTransformerEmbedder(model, precision)
        current.embed(texts[:32])  # warm-up
        started = time.perf_counter()
        current.embed(texts)
        seconds = time.perf_counter() - started
        single = []
        for q in queries[:50]:
            started = time.perf_counter()
            current.embed([q.sentence])
            single.append(time.perf_counter() - started)
        note = "" if precision == "fp32" or native_bf16() else "no native bf16 on this CPU"
        rows.append(
            [
                f"{current.name.split('@')[0]}@{precision}",
                len(texts),
                seconds,
                len(texts) / seconds,
                1000 * common.percentile(single, 50),
                note,
            ]
        )
        if current is not embedder:
            del current
            gc.collect()
    return rows


async def main_async(args: argparse.Namespace, corpus_root: Path) -> None:
    import faiss
    import numpy as np
    import torch

    from bot.services import Services
    from bot.settings import Settings

    if args.faiss_threads > 0:
        faiss.omp_set_num_threads(args.faiss_threads)
    rng = np.random.default_rng(args.seed)
    all_questions = sorted(
        common.load_questions(corpus_root, only_scorable=False), key=lambda q: (q.as_of, q.id)
    )
    queries = evenly_spaced(all_questions, args.queries)

    data_dir = args.data_dir or common.default_cache_dir("realtimeqa", ())
    print(f"data directory: {data_dir}  (kept, shared with benchmarks/retrieval.py)")
    settings = Settings(data_dir=data_dir)
    await common.ensure_corpus(settings.db_path, corpus_root)
    common.log("loading the model, opening the index of the real corpus (embeds if needed) ...")
    services = await Services.open(settings)  # the model as the bot loads it
    embedder = services.embedder
    common.print_machine_header(getattr(embedder, "precision", None))
    print(f"queries encoded by: {getattr(embedder, 'query_engine', '-')}")
    try:
        rows = await services.store.chunk_rows_for_index()
        stored = await services.store.vectors_for(embedder.name, (r.content_hash for r in rows))
        vectors = np.stack([np.frombuffer(stored[r.content_hash], dtype=np.float32) for r in rows])
        del stored
        query_vectors = embedder.embed([q.sentence for q in queries])
        print(
            f"real corpus: {len(rows):,} chunks, {embedder.name} (dim {vectors.shape[1]}); "
            f"{len(queries)} queries; torch threads {torch.get_num_threads()}, "
            f"FAISS threads {faiss.omp_get_max_threads()}; "
            f"replica noise {args.noise}"
        )
        print()

        if not args.no_service:
            common.log("timing search against query encoding ...")
            common.print_table(
                [
                    "pass",
                    "encode p50 ms",
                    "encode p95 ms",
                    "search p50 ms",
                    "search p95 ms",
                    "overhead p50 ms",
                    "overhead p95 ms",
                    "floor (+3 / +8 ms)",
                ],
                await search_overhead(services, queries),
                title=(
                    f"Search beyond query encoding: SearchService.search, {services.search.count:,}"
                    " real chunks, as of each question's date preferring its period (as the"
                    " answer engine asks), top 20; the same questions encoded alone just before"
                ),
            )
        service_rows = [] if args.no_service else await service_latency(services, queries)

        builds, latencies, qualities, memories = [], [], [], []
        for size in args.sizes:
            build, latency, quality, memory = bench_size(
                size, rows, vectors, embedder, queries, query_vectors, args, rng
            )
            gc.collect()
            builds += build
            latencies += latency
            qualities += quality
            memories.append(memory)

        common.print_table(
            ["chunks", "index", "build s", "chunks/s", "size MB", "RSS +MB"],
            builds,
            title="Index build (vectors given; BM25 includes tokenization)",
        )
        common.print_table(
            ["chunks", "query (top 50 per ranking)", "p50 ms", "p95 ms", "mean ms"],
            latencies,
            title="Query latency, query encoding included (as SearchService._rank + fusion)",
        )
        common.print_table(
            ["chunks", "filter", "HNSW recall@10", "share allowed"],
            qualities,
            title="HNSW recall@10 against exact search",
        )
        common.print_table(
            ["chunks", "RSS after build MB", "peak RSS MB"],
            memories,
            title="Process memory (model, real vectors and the current size's indexes)",
        )
        if service_rows:
            common.print_table(
                ["chunks", "SearchService", "p50 ms", "p95 ms", "mean ms"],
                service_rows,
                title="SearchService.search end to end on the real corpus (top 10, SQLite fetch)",
            )
        if args.encode_chunks > 0:
            pick = rng.choice(len(rows), min(args.encode_chunks, len(rows)), replace=False)
            from embeddings.indexer import embedding_text

            texts = [embedding_text(rows[i]) for i in pick]
            common.log("measuring encode throughput ...")
            common.print_table(
                ["model", "chunks", "seconds", "chunks/s", "1 query p50 ms", "note"],
                encode_throughput(embedder, settings.model, texts, queries),
                title="Encode throughput (real chunks, title + text, batch 32)",
            )
    finally:
        await services.close()


def main() -> int:
    args = build_parser().parse_args()
    root = common.require_data()
    asyncio.run(main_async(args, root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
