"""``newsbot index | search``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from tqdm import tqdm

from bot.services import Services
from bot.settings import Settings
from embeddings.indexer import IndexReport, Progress
from embeddings.search import SearchFilters


def register(sub: argparse._SubParsersAction) -> None:
    """Add the index and search commands."""
    p = sub.add_parser("index", help="bring the search index up to date")
    p.add_argument("--rebuild", action="store_true", help="rebuild from scratch")
    p.set_defaults(handler=cmd_index)

    p = sub.add_parser("search", help="print ranked passages for a query")
    p.add_argument("query")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--since", type=date.fromisoformat, help="YYYY-MM-DD")
    p.add_argument("--until", type=date.fromisoformat, help="YYYY-MM-DD")
    p.add_argument("--source", action="append", default=[], help="only this outlet")
    p.set_defaults(handler=cmd_search)


@contextmanager
def progress_bar() -> Iterator[Progress]:
    """A progress callback drawing one tqdm bar per stage (silent when not a terminal)."""
    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, leave=False, disable=None)
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()


def format_index_report(report: IndexReport) -> str:
    """One line about an index update."""
    how = "rebuilt" if report.rebuilt else "updated"
    return (
        f"index {how}: {report.chunks} chunks ({report.kind}), embedded {report.embedded}, "
        f"added {report.added}, removed {report.removed}, in {report.seconds:.1f} s"
    )


async def update_index(settings: Settings, *, route: bool = True) -> None:
    """Open the search service, which brings a stale index up to date, with a bar; then
    route the articles waiting for it to the chats that follow them (a running bot would
    do it within a second too: routing twice queues nothing twice)."""
    from bot.routing import route_all
    from corpus.subscription_repo import SubscriptionRepo

    with progress_bar() as bar:
        services = await Services.open(settings, progress=bar)
        try:
            print(f"index ready: {services.search.count} chunks")
            if route and await SubscriptionRepo(services.store).routes_waiting(1):
                queued = await route_all(services.store, await services.topic_matcher())
                print(f"queued {queued} pushes")
        finally:
            await services.close()


async def cmd_index(settings: Settings, args: argparse.Namespace) -> int:
    """Update (or rebuild) the index."""
    with progress_bar() as bar:
        services = await Services.open(settings, progress=bar)
        try:
            if args.rebuild:
                report = await services.search.update(rebuild=True, progress=bar)
            else:
                report = await services.search.update(progress=bar)
            print(format_index_report(report))
        finally:
            await services.close()
    return 0


async def cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    """Print ranked passages."""
    services = await Services.open(settings)
    try:
        filters = SearchFilters(args.since, args.until, tuple(args.source))
        hits = await services.search.search(args.query, args.k, filters)
        if not hits:
            print("no passages found")
            return 1
        for rank, hit in enumerate(hits, start=1):
            a = hit.article
            print(f"{rank:2d}. [{hit.score:.4f}] {a.title} ({a.source}, {a.published_at})")
            print(f"    article {a.id}, chars {hit.chunk.start}-{hit.chunk.end}")
            text = " ".join(hit.chunk.text.split())
            print(f"    {text[:300]}{'...' if len(text) > 300 else ''}")
    finally:
        await services.close()
    return 0
