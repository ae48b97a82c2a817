"""Admin commands: /reindex (live progress), /ingest URL, /stats, /delete ID.

Only users in ``NEWSBOT_ADMIN_IDS``; everyone else gets a polite refusal and nothing happens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from functools import wraps
from html import escape
from typing import Any

from telegram import Message, Update
from telegram.ext import ContextTypes

from bot.commands.corpus_cmds import format_stats
from bot.commands.search_cmds import format_index_report
from bot.services import url_policy as services_url_policy
from bot.telegram import metrics
from bot.telegram.args import parse_id
from bot.telegram.context import state_of
from bot.telegram.replies import edit_html
from corpus.fetch import FetchError, UrlPolicy, fetch_url
from corpus.ingest import ingest_one
from corpus.models import ArticleDraft, IngestReport
from corpus.readers.html import parse_html
from corpus.subscription_repo import SubscriptionRepo
from embeddings.index_updater import IndexUpdater

log = logging.getLogger(__name__)
Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]
PROGRESS_EVERY = 1.0  # seconds between progress edits (Telegram allows ~1 edit/s per chat)


def admin_only(handler: Handler) -> Handler:
    """Run ``handler`` for admins; refuse politely otherwise."""

    @wraps(handler)
    async def guarded(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        state = state_of(context.bot_data)
        user = update.effective_user
        if not state.is_admin(user.id if user else None):
            if update.effective_message:
                await update.effective_message.reply_text(
                    "Sorry, only the bot's admins can do that."
                )
            return
        await handler(update, context)

    return guarded


def url_policy(context: ContextTypes.DEFAULT_TYPE) -> UrlPolicy:
    """Fetch limits from the bot's settings."""
    return services_url_policy(state_of(context.bot_data).settings)


@admin_only
async def on_stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/stats: corpus statistics and index size."""
    state = state_of(context.bot_data)
    assert state.services and update.effective_message
    stats = await state.services.store.stats()
    metrics.set_corpus_size(stats.articles, stats.chunks)
    paused = await SubscriptionRepo(state.services.store).paused_chats()
    text = format_stats(stats) + f"\nindexed:  {state.services.search.count} chunks"
    if paused:
        text += f"\npushes paused for {len(paused)} chat(s): " + ", ".join(
            str(c.chat_id) for c in paused[:10]
        )
    await update.effective_message.reply_html(f"<pre>{escape(text)}</pre>")


@admin_only
async def on_delete(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/delete ID: delete an article (its chunks stop matching at once)."""
    state = state_of(context.bot_data)
    message = update.effective_message
    assert state.services and message
    article_id = parse_id(context.args[0] if context.args else None)
    if article_id is None:
        await message.reply_text("Usage: /delete ARTICLE_ID (see /stats and `newsbot articles`).")
        return
    if await state.services.store.delete_article(article_id):
        await message.reply_text(f"Deleted article {article_id}.")
        state.request_index()  # its chunks already stop matching: searches check the store
    else:
        await message.reply_text(f"There is no article {article_id}.")


@admin_only
async def on_ingest(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/ingest URL: fetch an article page, store it and index it."""
    state = state_of(context.bot_data)
    message = update.effective_message
    assert state.services and message
    if not context.args:
        await message.reply_text("Usage: /ingest https://example.org/some-article")
        return
    url = context.args[0]
    try:
        fetched = await fetch_url(url, url_policy(context))
    except FetchError as exc:
        await message.reply_text(f"I could not fetch that page: {exc}")
        return
    if fetched.content_type and "html" not in fetched.content_type:
        await message.reply_text(f"That is not a web page ({fetched.content_type}).")
        return
    today = datetime.now(UTC).date()  # feeds and the as-of filter count days in UTC too
    result = await asyncio.to_thread(parse_html, fetched.body, url, fetched.final_url, today)
    if not isinstance(result, ArticleDraft):
        await message.reply_text(f"I could not read an article there: {result.reason}.")
        return
    report = IngestReport()
    article_id = await ingest_one(state.services.store, result, report)
    if report.duplicates:
        await message.reply_text(f"I already have that article (id {article_id}).")
        return
    if article_id is None:  # refused (see IngestReport.failed)
        reason = report.failed[-1][1] if report.failed else "it could not be stored"
        await message.reply_text(f"I did not store that page: {reason}.")
        return
    state.request_index()  # searchable in a moment; followers get it from the outbox
    verb = "Updated" if report.updated else "Added"
    await message.reply_html(
        f"{verb} article {article_id}: <b>{escape(result.title)}</b> "
        f"({escape(result.source or 'unknown outlet')}, {result.published_at})."
    )


@admin_only
async def on_reindex(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/reindex: rebuild the index in the background, with progress in one edited message."""
    state = state_of(context.bot_data)
    message = update.effective_message
    assert state.services and message
    if state.reindexing:
        await message.reply_text("A re-index is already running; I will report when it is done.")
        return
    # Set before the first await: updates run concurrently, a second /reindex may be next.
    state.reindexing = True
    try:
        status = await message.reply_text("Re-indexing: starting…")
        assert state.indexer is not None  # started in post_init
        task = context.application.create_task(_reindex(state.indexer, status), update=update)
    except BaseException:
        state.reindexing = False
        raise
    task.add_done_callback(lambda _: setattr(state, "reindexing", False))


async def _reindex(indexer: IndexUpdater, status: Message) -> None:
    latest: list[str | int] = ["starting", 0, 0]

    def on_progress(stage: str, done: int, total: int) -> None:
        latest[:] = [stage, done, total]  # called from the embedding thread; read below

    task = asyncio.create_task(indexer.rebuild(progress=on_progress))
    shown = ""
    while not task.done():
        await asyncio.wait({task}, timeout=PROGRESS_EVERY)
        text = "Re-indexing: {} {}/{}".format(*latest)
        if text != shown and not task.done():
            try:
                await edit_html(status, escape(text))
                shown = text
            except Exception:  # progress is best effort; the re-index goes on
                log.warning("could not edit the progress message", exc_info=True)
    try:
        report = task.result()
    except Exception:
        log.exception("re-index failed")
        await edit_html(status, "Re-indexing failed; the previous index is still answering.")
        return
    await edit_html(status, "Re-index done: " + escape(format_index_report(report)))
