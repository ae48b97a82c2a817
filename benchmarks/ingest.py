"""Ingest speed: the RealTime QA corpus into a fresh, temporary data directory.

Measures how fast ``corpus.ingest.ingest_results`` stores articles and their chunks in
SQLite (deduplication, chunking, one transaction per article), without any embedding
or indexing. Reading the JSON Lines files into drafts is timed separately. Prints one
table: articles, chunks, seconds, articles/s, chunks/s and the peak RSS of the process.

The corpus is the union of every ``search_result`` article of
``../shared/data/realtimeqa-2023q1/*_gcs.jsonl``, deduplicated by URL; without that
directory the benchmark exits 0 with a message.

    .venv/bin/python benchmarks/ingest.py [--months 01,02] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--months", help="only these months of the corpus, e.g. 01,02 (default: all)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="ingest N times, each into a fresh store (default 1)"
    )
    return parser


async def ingest_once(drafts: list) -> tuple[int, int, int, int, float]:
    """(articles, chunks, duplicates, failed, seconds) of one ingest into a fresh store."""
    from bot.settings import Settings
    from corpus.ingest import ingest_results
    from corpus.store import Store

    with tempfile.TemporaryDirectory(prefix="newsbot-bench-ingest-") as tmp:
        store = await Store.open(Settings(data_dir=Path(tmp)).db_path)
        try:
            started = time.perf_counter()
            report = await ingest_results(store, drafts)
            seconds = time.perf_counter() - started
            stats = await store.stats()
        finally:
            await store.close()
    return stats.articles, stats.chunks, len(report.duplicates), len(report.failed), seconds


async def main_async(args: argparse.Namespace, root: Path) -> None:
    common.print_machine_header(import_torch=False)  # no model here; torch would add to RSS
    months = common.parse_months(args.months)
    started = time.perf_counter()
    corpus = common.load_corpus(root, months)
    read_seconds = time.perf_counter() - started
    print(
        f"corpus: {corpus.search_results:,} search results, {corpus.unique_urls:,} unique URLs, "
        f"{len(corpus.drafts):,} drafts ({len(corpus.failures)} unusable: no date or text); "
        f"read in {read_seconds:.2f} s"
    )
    print()
    rows = []
    for run in range(1, max(1, args.repeat) + 1):
        articles, chunks, duplicates, failed, seconds = await ingest_once(corpus.drafts)
        rows.append(
            [
                run,
                articles,
                duplicates,
                failed,
                chunks,
                seconds,
                articles / seconds,
                chunks / seconds,
                common.peak_rss_mb(),
            ]
        )
    common.print_table(
        [
            "run",
            "articles",
            "duplicates",
            "failed",
            "chunks",
            "seconds",
            "articles/s",
            "chunks/s",
            "peak RSS MB",
        ],
        rows,
        title="Ingest (store + chunk, no embedding), fresh temporary store per run",
    )


def main() -> int:
    """Entry point."""
    return common.run_benchmark("ingest.py", build_parser(), main_async)


if __name__ == "__main__":
    sys.exit(main())
