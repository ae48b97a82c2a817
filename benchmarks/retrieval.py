"""Retrieval quality on RealTime QA: does search put a passage with the answer on top?

Ingests the RealTime QA corpus (every ``search_result`` article of
``../shared/data/realtimeqa-2023q1/*_gcs.jsonl``, deduplicated by URL) into a data
directory, indexes it with the real default model (``Settings`` defaults, through
``Services.open``), and asks every quiz question as of its ``question_date``
(``SearchFilters(until=question_date)``), as a user asking on that day would.

A retrieved chunk is a hit when its SQuAD-normalized text contains the normalized
text of the correct choice (as whole words). Reported for dense only, keyword (BM25)
only, hybrid with reciprocal-rank fusion (the default) and hybrid with weighted
fusion: Hits@1, Hits@4, Hits@10 and MRR@10, with the mean search latency. The ceiling
row is the share of questions whose answer occurs in any chunk published by the
question's date: no ranking can do better. Many of those occurrences are chance (a
"Georgia" or "104" in an unrelated story), so a second row gives the share whose answer
occurs in the question's *own* search results (the articles the search engine returned
for it): what retrieving the right articles can be expected to reach. Questions whose
answer is shorter than 3 characters or is true/false/yes/no are left out (370 of 390
remain).

Also printed: the index build time (embedding, FAISS and BM25, end to end) and its
chunks/s. The data directory is kept between runs (default
``$TMPDIR/newsbot-bench-<hash>``, printed), so later runs skip ingest and embedding;
``--data-dir`` picks another one, ``--fresh`` empties it first. Without
``../shared/data`` the benchmark exits 0 with a message.

    .venv/bin/python benchmarks/retrieval.py [--limit 50] [--months 01,02] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common

K = 10
META_FILE = "bench-retrieval.json"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, help="only the first N questions (default: all)")
    parser.add_argument(
        "--months",
        help="only these months, e.g. 01,02,03, for the questions and the corpus (default: all)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="data directory to use and keep (reused when it already holds the corpus); "
        "default: $TMPDIR/newsbot-bench-<hash>",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="empty the data directory first (re-ingest, re-embed)"
    )
    return parser


@dataclass
class MethodScore:
    """Ranks of the first hit per question (None: no hit in the top K) and latencies."""

    name: str
    ranks: list[int | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def hits_at(self, k: int) -> float:
        return sum(1 for r in self.ranks if r is not None and r <= k) / max(1, len(self.ranks))

    def mrr(self) -> float:
        return sum(1.0 / r for r in self.ranks if r is not None) / max(1, len(self.ranks))


def first_hit(hits: list, answer: str) -> int | None:
    """1-based rank of the first hit whose chunk text contains the answer."""
    for rank, hit in enumerate(hits, start=1):
        if common.contains_answer(common.normalize_answer(hit.chunk.text), answer):
            return rank
    return None


async def main_async(args: argparse.Namespace, corpus_root: Path) -> None:
    from bot.answering.timeparse import resolve_time
    from bot.services import Services
    from bot.settings import Settings
    from embeddings.embedder import load_embedder
    from embeddings.search import SearchFilters

    months = common.parse_months(args.months)
    questions = common.load_questions(corpus_root, months)
    if args.limit:
        questions = questions[: args.limit]
    if not questions:
        print("retrieval.py: no questions selected")
        return

    data_dir = args.data_dir or common.default_cache_dir("realtimeqa", months)
    if args.fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    print(f"data directory: {data_dir}  (kept; --fresh to rebuild, delete it to free disk)")
    settings = Settings(data_dir=data_dir)
    await common.ensure_corpus(settings.db_path, corpus_root, months)

    started = time.perf_counter()
    embedder = await asyncio.to_thread(
        load_embedder, settings.model, settings.embed_precision, settings.cache_dir
    )
    model_seconds = time.perf_counter() - started
    common.print_machine_header(getattr(embedder, "precision", None))

    marks: dict[str, float] = {}
    embedded = 0
    logged = [-1]

    def progress(stage: str, done: int, total: int) -> None:
        nonlocal embedded
        now = time.perf_counter()
        marks.setdefault(f"{stage}-start", now)
        if stage == "embedding":
            embedded = total
            marks["embedding-end"] = now
            decile = 10 * done // max(1, total)
            if decile != logged[0]:
                logged[0] = decile
                common.log(f"  embedding {done:,}/{total:,}")

    common.log(f"indexing with {embedder.name} ...")
    started = time.perf_counter()
    services = await Services.open(settings, embedder=embedder, progress=progress)
    open_seconds = time.perf_counter() - started
    try:
        store, service = services.store, services.search
        stats = await store.stats()
        meta_path = data_dir / META_FILE
        built = "indexing-start" in marks
        meta: dict[str, Any]
        if built:
            meta = {
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "model": embedder.name,
                "chunks": service.count,
                "embedded": embedded,
                "index_seconds": open_seconds,
                "embed_seconds": (marks["embedding-end"] - marks["embedding-start"])
                if embedded
                else 0.0,
            }
            meta_path.write_text(json.dumps(meta, indent=2))
        else:
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                meta = {}

        rows: list[list[Any]] = [
            ["articles", stats.articles, ""],
            ["chunks indexed", service.count, ""],
            ["model", embedder.name, f"loaded in {model_seconds:.1f} s"],
        ]
        if built:
            rows.append(["index build (s)", open_seconds, "embed + FAISS + BM25 + save"])
        else:
            rows.append(["index load (s)", open_seconds, "reused, up to date"])
        if meta.get("index_seconds"):
            note = "this run" if built else f"from the run that built it, {meta.get('built_at')}"
            rows.append(["build chunks/s", meta["chunks"] / meta["index_seconds"], note])
            if meta.get("embedded"):
                rows.append(
                    [
                        "embedding chunks/s",
                        meta["embedded"] / meta["embed_seconds"],
                        f"{meta['embedded']:,} chunks in {meta['embed_seconds']:.0f} s ({note})",
                    ]
                )
        common.print_table(["index", "value", "note"], rows, title="Corpus and index")

        # The ceiling: the answer occurs in some chunk published by the question's date.
        chunk_rows = await store.chunk_rows_for_index()
        dated = [
            (r.published_at, common.normalize_answer(r.text))
            for r in chunk_rows
            if r.published_at is not None
        ]
        own_urls = common.own_result_urls(corpus_root, months)
        by_url = {
            a.url: (a.published_at, common.normalize_answer(a.text))
            for a in await store.all_articles()
            if a.url and a.published_at
        }
        in_own = 0
        methods = {
            name: MethodScore(name)
            for name in ("dense", "keyword", "hybrid rrf", "hybrid weighted", "hybrid rrf + time")
        }
        ceiling = 0
        started = time.perf_counter()
        for number, q in enumerate(questions, start=1):
            answer = common.normalize_answer(q.answer)
            if any(d <= q.as_of and common.contains_answer(t, answer) for d, t in dated):
                ceiling += 1
            own = [by_url[u] for u in own_urls.get(q.id, ()) if u in by_url]
            if any(d <= q.as_of and common.contains_answer(t, answer) for d, t in own):
                in_own += 1
            filters = SearchFilters(until=q.as_of)
            # What the answer engine does: prefer the period the question names ("this week").
            window = resolve_time(q.sentence, q.as_of)
            timed = SearchFilters(
                until=q.as_of, prefer=(window.since, window.until) if window else None
            )
            runs = (
                ("dense", "rrf", service.dense_only, filters),
                ("keyword", "rrf", service.keyword_only, filters),
                ("hybrid rrf", "rrf", service.search, filters),
                ("hybrid weighted", "weighted", service.search, filters),
                ("hybrid rrf + time", "rrf", service.search, timed),
            )
            for name, fusion, method, with_filters in runs:
                service.fusion = fusion
                t0 = time.perf_counter()
                hits = await method(q.sentence, K, with_filters)
                methods[name].seconds.append(time.perf_counter() - t0)
                methods[name].ranks.append(first_hit(hits, answer))
            if number % 50 == 0:
                common.log(f"  {number}/{len(questions)} questions")
        service.fusion = "rrf"
        common.log(f"searched in {time.perf_counter() - started:.0f} s")

        n = len(questions)
        table = [
            [
                m.name,
                m.hits_at(1),
                m.hits_at(4),
                m.hits_at(10),
                m.mrr(),
                1000 * sum(m.seconds) / len(m.seconds),
            ]
            for m in methods.values()
        ]
        table.append(["ceiling", ceiling / n, ceiling / n, ceiling / n, None, None])
        table.append(["in own search results", in_own / n, in_own / n, in_own / n, None, None])
        what = f"months {','.join(months)}" if months else "all months"
        common.print_table(
            ["method", "Hits@1", "Hits@4", "Hits@10", "MRR@10", "mean ms"],
            table,
            title=f"Retrieval on RealTime QA, {n} questions ({what}), "
            f"as of each question date, top {K}",
        )
        rrf, weighted = methods["hybrid rrf"], methods["hybrid weighted"]
        best = "weighted" if weighted.mrr() > rrf.mrr() else "rrf"
        differ = sum(1 for a, b in zip(rrf.ranks, weighted.ranks, strict=True) if a != b)
        print(
            f"better fusion by MRR@10: {best} (rrf {rrf.mrr():.3f}, weighted "
            f"{weighted.mrr():.3f}; first-hit rank differs on {differ} of {n} questions); "
            f"peak RSS {common.peak_rss_mb():,.0f} MB"
        )
    finally:
        await services.close()


def main() -> int:
    """Entry point."""
    return common.run_benchmark("retrieval.py", build_parser(), main_async)


if __name__ == "__main__":
    sys.exit(main())
