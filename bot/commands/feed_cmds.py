"""``newsbot feeds add | list | remove`` and ``newsbot poll``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime

from bot.commands.search_cmds import update_index
from bot.services import url_policy
from bot.settings import Settings
from corpus.feed_poller import PollResult, poll_feeds, validate_feed_url
from corpus.feed_repo import Feed, FeedRepo
from corpus.fetch import UrlNotAllowed
from corpus.store import Store


def register(sub: argparse._SubParsersAction) -> None:
    """Add the feeds and poll commands."""
    feeds = sub.add_parser("feeds", help="follow RSS/Atom feeds (add, list, remove)")
    feeds.set_defaults(handler=_feeds_usage(feeds))
    actions = feeds.add_subparsers(dest="feeds_command", metavar="ACTION")

    p = actions.add_parser("add", help="follow a feed")
    p.add_argument("url", metavar="URL")
    p.add_argument("--minutes", type=int, help="poll interval (default NEWSBOT_FEED_POLL_MINUTES)")
    p.set_defaults(handler=cmd_feeds_add)

    p = actions.add_parser("list", help="list feeds with their state")
    p.set_defaults(handler=cmd_feeds_list)

    p = actions.add_parser("remove", help="stop following a feed (its articles stay)")
    p.add_argument("feed_id", type=int, metavar="ID")
    p.set_defaults(handler=cmd_feeds_remove)

    p = sub.add_parser("poll", help="poll feeds now and ingest their new articles")
    p.add_argument("--due-only", action="store_true", help="only feeds whose next run has come")
    p.set_defaults(handler=cmd_poll)


def _feeds_usage(parser: argparse.ArgumentParser) -> Callable[[Settings, argparse.Namespace], int]:
    """A handler for a bare ``newsbot feeds``: its usage."""

    def show(settings: Settings, args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


# --------------------------------------------------------------------------
# feeds add | list | remove
# --------------------------------------------------------------------------


async def cmd_feeds_add(settings: Settings, args: argparse.Namespace) -> int:
    """Follow a feed; prints its id. The URL is checked before anything is stored."""
    url = args.url.strip()
    minutes = args.minutes if args.minutes is not None else settings.feed_poll_minutes
    if minutes < 1:
        print("newsbot feeds add: --minutes must be at least 1", file=sys.stderr)
        return 2
    try:
        validate_feed_url(url, url_policy(settings))
    except UrlNotAllowed as exc:
        print(f"newsbot feeds add: {exc}", file=sys.stderr)
        return 2
    async with await Store.open(settings.db_path) as store:
        repo = FeedRepo(store)
        existing = await repo.by_url(url)
        feed = existing or await repo.add(url, minutes)
    if existing:
        print(f"feed {feed.id} already exists: {feed.url}")
    else:
        print(f"added feed {feed.id}: {feed.url} (every {feed.interval_minutes} min)")
    return 0


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def format_feed(feed: Feed) -> str:
    """A feed's state in two or three lines."""
    lines = [
        f"{feed.id:4d}  {feed.title or '(no title yet)'}",
        f"      {feed.url}",
        f"      every {feed.interval_minutes} min, last fetch {_when(feed.last_fetch_at)},"
        f" next run {_when(feed.next_run_at)}, failures {feed.failures}",
    ]
    if feed.last_error:
        lines.append(f"      last error: {feed.last_error}")
    return "\n".join(lines)


async def cmd_feeds_list(settings: Settings, args: argparse.Namespace) -> int:
    """List feeds: id, title, URL, interval, last fetch, next run, failures, last error."""
    async with await Store.open(settings.db_path) as store:
        feeds = await FeedRepo(store).all()
    if not feeds:
        print("no feeds; add one with: newsbot feeds add URL")
    for feed in feeds:
        print(format_feed(feed))
    return 0


async def cmd_feeds_remove(settings: Settings, args: argparse.Namespace) -> int:
    """Stop following a feed."""
    async with await Store.open(settings.db_path) as store:
        removed = await FeedRepo(store).remove(args.feed_id)
    if not removed:
        print(f"no feed {args.feed_id}")
        return 1
    print(f"removed feed {args.feed_id}")
    return 0


# --------------------------------------------------------------------------
# poll
# --------------------------------------------------------------------------


def format_poll_result(result: PollResult) -> str:
    """One line per feed, then one per failed entry with its reason."""
    head = f"feed {result.feed_id} ({result.url}): "
    if result.error:
        return head + f"error: {result.error}"
    if result.not_modified:
        return head + "not modified"
    lines = [
        head + f"new {len(result.new_article_ids)}, updated {len(result.updated_article_ids)},"
        f" duplicates {result.duplicates}, failed {len(result.failed_entries)}"
    ]
    lines += [f"  failed: {label}: {reason}" for label, reason in result.failed_entries]
    return "\n".join(lines)


async def poll_once(settings: Settings, *, due_only: bool = False) -> list[PollResult]:
    """Poll all feeds (or just the due ones) once, sequentially."""
    async with await Store.open(settings.db_path) as store:
        repo = FeedRepo(store)
        feeds = await (repo.due() if due_only else repo.all())
        return await poll_feeds(store, feeds, url_policy(settings))


async def cmd_poll(settings: Settings, args: argparse.Namespace) -> int:
    """Poll feeds now; index and route what changed. Exit 1 when a feed failed."""
    results = await poll_once(settings, due_only=args.due_only)
    if not results:
        print("no feeds to poll")
    for result in results:
        print(format_poll_result(result))
    if any(r.changed_ids for r in results):
        await update_index(settings)  # and routes the new articles to their followers
    return 1 if any(r.error for r in results) else 0
