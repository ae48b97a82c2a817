"""What a small index update costs: one new article on top of N chunks, per stage.

A channel post or a feed entry adds one article; the background indexer then brings the
index up to date. This measures that update (hash embedder, so the figure is the index's
own work, not the model's): the median over ``--rounds`` articles, in wall time and in
process CPU time (CPU time stays meaningful when other jobs share the cores).

    python benchmarks/index_update.py --chunks 3000 --rounds 15
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from corpus.ingest import ingest_results  # noqa: E402
from corpus.store import Store  # noqa: E402
from embeddings.embedder import HashEmbedder  # noqa: E402
from embeddings.index_dir import IndexDirectory  # noqa: E402
from embeddings.search import SearchService  # noqa: E402


async def measure(root: Path, chunks: int, rounds: int) -> None:
    """Ingest articles up to ``chunks`` chunks, index, then time one-article updates."""
    drafts = common.load_corpus(root, ("01",)).drafts
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "newsbot.db")
        used = 0
        while used < len(drafts) and (await store.stats()).chunks < chunks:
            await ingest_results(store, [drafts[used]], route=False)
            used += 1
        search = SearchService(store, HashEmbedder(), IndexDirectory(Path(tmp) / "index"))
        await search.open()
        await ingest_results(store, [drafts[used]], route=False)
        used += 1
        await search.update()  # the caches (tokens, rows) warm, as in a running bot
        stages: dict[str, list[float]] = {}
        wall, cpu = [], []
        for draft in drafts[used : used + rounds]:
            await ingest_results(store, [draft], route=False)
            started, started_cpu = time.perf_counter(), time.process_time()
            report = await search.update()
            wall.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            for name, seconds in report.stages:
                stages.setdefault(name, []).append(seconds)
        await store.close()
    common.print_machine_header(import_torch=False)
    print(f"\none-article update on {search.count} chunks, median of {len(wall)}\n")
    print("| stage | ms (wall) |\n| --- | --- |")
    for name, seconds in stages.items():
        print(f"| {name} | {statistics.median(seconds) * 1000:.1f} |")
    print(f"| **whole update** | {statistics.median(wall) * 1000:.1f} |")
    print(f"| whole update, process CPU | {statistics.median(cpu) * 1000:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=3000, help="chunks before the updates")
    parser.add_argument("--rounds", type=int, default=15, help="one-article updates timed")
    args = parser.parse_args()
    root = common.require_data(prog="index_update.py")
    asyncio.run(measure(root, args.chunks, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
