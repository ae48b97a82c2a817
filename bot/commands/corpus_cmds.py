"""``newsbot ingest | stats | articles | delete``."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from bot.settings import Settings
from corpus.ingest import ingest_results
from corpus.models import IngestReport
from corpus.readers import ReadResult, read_path
from corpus.store import CorpusStats, Store


def register(sub: argparse._SubParsersAction) -> None:
    """Add the corpus commands."""
    p = sub.add_parser("ingest", help="ingest files or directories of articles")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--no-index", action="store_true", help="do not update the search index")
    p.add_argument(
        "--no-push",
        action="store_true",
        help="do not push the new articles to the chats that follow them (an archive import)",
    )
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("stats", help="corpus statistics")
    p.set_defaults(handler=cmd_stats)

    p = sub.add_parser("articles", help="list stored articles, newest first")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.set_defaults(handler=cmd_articles)

    p = sub.add_parser("delete", help="delete an article by id")
    p.add_argument("article_id", type=int, metavar="ID")
    p.set_defaults(handler=cmd_delete)


def format_report(report: IngestReport) -> str:
    """The ingest summary: counts, then one line per failure with its reason."""
    lines = [
        f"added {len(report.added)}, updated {len(report.updated)}, "
        f"duplicates {len(report.duplicates)}, failed {len(report.failed)}"
    ]
    lines += [f"  failed: {origin}: {reason}" for origin, reason in report.failed]
    return "\n".join(lines)


def format_stats(stats: CorpusStats) -> str:
    """Corpus statistics as a few lines of text."""
    span = f"{stats.first_date} to {stats.last_date}" if stats.first_date else "no dated articles"
    lines = [
        f"articles: {stats.articles}",
        f"chunks:   {stats.chunks}",
        f"dates:    {span}",
        f"version:  {stats.corpus_version}",
    ]
    if stats.sources:
        lines.append("outlets:")
        lines += [f"  {n:6d}  {source or '(unknown)'}" for source, n in stats.sources[:15]]
    return "\n".join(lines)


async def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    """Ingest the given paths, then bring the index up to date (unless --no-index)."""
    store = await Store.open(settings.db_path)
    report = IngestReport()
    try:
        max_bytes = int(settings.max_file_mb * 1024 * 1024)
        with tqdm(desc="ingest", unit=" articles", leave=False, disable=None) as bar:

            def tick(_: ReadResult) -> None:
                bar.update(1)

            for path in args.paths:
                results = read_path(path, max_bytes)
                report.merge(await ingest_results(store, results, tick, route=not args.no_push))
        print(format_report(report))
    finally:
        await store.close()
    if not args.no_index:
        from bot.commands.search_cmds import update_index  # loads the model: only when needed

        await update_index(settings)
    return 1 if report.failed and not report.changed_ids and not report.duplicates else 0


async def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    """Print corpus statistics."""
    async with await Store.open(settings.db_path) as store:
        print(format_stats(await store.stats()))
    return 0


async def cmd_articles(settings: Settings, args: argparse.Namespace) -> int:
    """List articles."""
    async with await Store.open(settings.db_path) as store:
        for a in await store.list_articles(args.limit, args.offset):
            print(f"{a.id:6d}  {a.published_at}  {a.source[:24]:24s}  {a.title[:80]}")
    return 0


async def cmd_delete(settings: Settings, args: argparse.Namespace) -> int:
    """Delete one article."""
    async with await Store.open(settings.db_path) as store:
        if not await store.delete_article(args.article_id):
            print(f"no article {args.article_id}")
            return 1
        print(f"deleted article {args.article_id}")
    return 0
