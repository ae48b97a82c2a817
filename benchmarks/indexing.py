"""Indexing end to end against the bare encoder, in the same run on the same machine.

The model is the cost of indexing; storing, FAISS and BM25 should be nearly free. So the
figure that travels between machines (about 3x apart in model speed) is the ratio:
end-to-end chunks/s (ingest into a fresh data directory, embed, store the vectors, build
FAISS and BM25, save) over the bare encoder's chunks/s on the same chunk texts.

The corpus is the RealTime QA 2023 Q1 news (``../shared/data``; a clone without it exits 0
saying so). The default is January (about 8,900 chunks, ~4 minutes per pass on a CPU that
encodes 39 chunks/s); ``--months 01,02,03`` takes the whole quarter (29,500 chunks).

    .venv/bin/python benchmarks/indexing.py [--months 01] [--precision auto]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402


async def run(args: argparse.Namespace, root: Path) -> None:
    from bot.settings import Settings
    from corpus.ingest import ingest_results
    from corpus.store import Store
    from embeddings.embedder import load_embedder
    from embeddings.index_dir import IndexDirectory
    from embeddings.indexer import embedding_text
    from embeddings.search import SearchService

    months = common.parse_months(args.months)
    corpus = common.load_corpus(root, months)
    drafts = corpus.drafts[: args.articles or None]
    with tempfile.TemporaryDirectory(prefix="newsbot-bench-indexing-") as tmp:
        settings = Settings(data_dir=Path(tmp), embed_precision=args.precision)
        embedder = await asyncio.to_thread(
            load_embedder, settings.model, settings.embed_precision, settings.cache_dir
        )
        common.print_machine_header(getattr(embedder, "precision", None))

        started = time.perf_counter()
        store = await Store.open(settings.db_path)
        try:
            await ingest_results(store, drafts)
            ingest_seconds = time.perf_counter() - started
            search = SearchService(store, embedder, IndexDirectory(settings.index_dir))
            report = await search.open()
            total_seconds = time.perf_counter() - started
            rows = await store.chunk_rows_for_index()
        finally:
            await store.close()

        texts = [embedding_text(r) for r in rows]
        common.log(f"bare encoder over the same {len(texts):,} chunk texts ...")
        bare_started = time.perf_counter()
        await asyncio.to_thread(embedder.embed, texts)
        bare_seconds = time.perf_counter() - bare_started

    chunks = len(rows)
    bare_rate = chunks / bare_seconds
    e2e_rate = chunks / total_seconds
    common.print_table(
        ["pass", "chunks", "seconds", "chunks/s", "of bare encoder"],
        [
            ["bare encoder (embed only)", chunks, bare_seconds, bare_rate, 1.0],
            ["end to end (ingest + index)", chunks, total_seconds, e2e_rate, e2e_rate / bare_rate],
        ],
        title=f"Indexing RealTime QA 2023 Q1 (months {','.join(months) or 'all'}, "
        f"{len(drafts):,} articles), fresh data dir",
    )
    stages = [("ingest (parse, dedupe, chunk, SQLite)", ingest_seconds)]
    if report is not None:
        stages += list(report.stages)
    accounted = sum(seconds for _, seconds in stages)
    stages.append(("other (model load excluded; opening, checks)", total_seconds - accounted))
    common.print_table(
        ["stage", "seconds", "share"],
        [[name, seconds, seconds / total_seconds] for name, seconds in stages],
        title="Where the end-to-end time goes",
    )


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--months", default="01", help="e.g. 01,02,03 (default: 01)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--articles", type=int, help="only the first N articles (a quick run)")
    return common.run_benchmark("indexing.py", parser, run)


if __name__ == "__main__":
    sys.exit(main())
