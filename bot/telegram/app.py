"""Build the Telegram application: one place, handlers registered in a commented order.

Services (store, model, index) open in ``post_init`` and close in ``post_shutdown``.
"""

from __future__ import annotations

import contextlib
import gc
import html
import json
import logging
import traceback

from telegram import BotCommand, BotCommandScopeChat, BotCommandScopeDefault, Update
from telegram.error import Forbidden, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.services import Services
from bot.settings import Settings
from bot.telegram import admin, flood, follow, group_admins, handlers, metrics, sources
from bot.telegram.context import BotState, state_of
from bot.telegram.delivery import DeliverySender
from bot.telegram.ratelimit import FloodGate, UserRateLimiter
from embeddings.index_updater import IndexUpdater

log = logging.getLogger(__name__)

READER_COMMANDS = [
    BotCommand("ask", "Ask a question about the news"),
    BotCommand("about", "What articles I hold"),
    BotCommand("follow", "Get new articles on a topic or feed"),
    BotCommand("following", "What this chat follows"),
    BotCommand("unfollow", "Stop following"),
    BotCommand("digest", "One daily message: /digest 08:00 or off"),
    BotCommand("help", "How to use me"),
]
ADMIN_COMMANDS = [
    *READER_COMMANDS,
    BotCommand("reindex", "Rebuild the search index"),
    BotCommand("ingest", "Fetch and add an article by URL"),
    BotCommand("stats", "Corpus statistics"),
    BotCommand("delete", "Delete an article by id"),
    BotCommand("addfeed", "Poll an RSS/Atom feed"),
    BotCommand("feeds", "List feeds"),
    BotCommand("removefeed", "Stop polling a feed"),
    BotCommand("addchannel", "Take a channel's posts as articles"),
    BotCommand("approvechannel", "Accept a channel that asked to be a source"),
    BotCommand("removechannel", "Stop taking a channel's posts"),
]
# Commands work in channels too, where they arrive as channel posts.
MESSAGES_AND_POSTS = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST


async def post_init(application: Application) -> None:
    """Open the services and publish the command menus."""
    state = state_of(application.bot_data)
    state.services = await Services.open(state.settings)
    state.engine = await state.services.answers()
    state.notify_admins = _admin_notifier(application)
    state.sender = DeliverySender(state.services.store, notify_admins=state.notify_admins)
    await state.services.topic_matcher()
    # One background task keeps the index up with the store (this process' writes and
    # other processes'); handlers only ask it.
    state.indexer = IndexUpdater(state.services.search)
    state.indexer.start()
    # The start-up heap (torch, transformers, the models) never becomes garbage: keep the
    # collector from scanning it, or a full collection stops every thread for 240-350 ms
    # (measured while /reindex runs: benchmarks/answers_during_reindex.py).
    gc.collect()
    gc.freeze()
    stats = await state.services.store.stats()
    metrics.set_corpus_size(stats.articles, stats.chunks)
    if state.settings.metrics_port:
        metrics.serve(state.settings.metrics_port)
    await application.bot.set_my_commands(READER_COMMANDS, scope=BotCommandScopeDefault())
    for admin_id in state.settings.admin_ids:
        try:
            await application.bot.set_my_commands(
                ADMIN_COMMANDS, scope=BotCommandScopeChat(admin_id)
            )
        except TelegramError as exc:  # an admin who never started the bot
            log.warning("could not set admin commands for %s: %s", admin_id, exc)
    if application.job_queue:
        # Articles waiting to be routed and pending pushes (also those left from before a
        # restart, or written by another process) go out from the first tick.
        application.job_queue.run_repeating(sources.outbox_job, interval=1.0, first=1.0)
        application.job_queue.run_repeating(
            sources.poll_feeds_job, interval=state.settings.feed_check_seconds, first=2.0
        )
    log.info(
        "newsbot ready: %d articles, %d chunks indexed", stats.articles, state.services.search.count
    )


def _admin_notifier(application: Application):
    """A function that tells the admin chat (or every admin) something, best effort."""

    async def notify(html_text: str) -> None:
        state = state_of(application.bot_data)
        targets = [state.settings.admin_chat_id] if state.settings.admin_chat_id else []
        for chat_id in targets or sorted(state.settings.admin_ids):
            try:
                await application.bot.send_message(chat_id, html_text, parse_mode="HTML")
            except TelegramError:
                log.warning("could not notify admin chat %s", chat_id)

    return notify


async def post_shutdown(application: Application) -> None:
    """Close the services."""
    state = state_of(application.bot_data)
    if state.indexer:
        await state.indexer.stop()
    if state.services:
        await state.services.close()


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log every handler error with context, tell the admin chat, never show a traceback."""
    metrics.ERRORS.inc()
    error = context.error
    if isinstance(error, Forbidden):  # blocked by a user: nothing to tell anyone
        log.info("forbidden: %s", error)
        return
    log.error("error while handling an update", exc_info=error)
    state = state_of(context.bot_data)
    # Never into a channel: there the apology would be posted to all its readers.
    chat = update.effective_chat if isinstance(update, Update) else None
    if isinstance(update, Update) and update.effective_message and chat and chat.type != "channel":
        with contextlib.suppress(TelegramError):  # the error may be Telegram itself
            await update.effective_message.reply_text(
                "Sorry, something went wrong on my side. Please try again in a moment."
            )
    if state.settings.admin_chat_id:
        trace = "".join(
            traceback.format_exception(None, error, error.__traceback__ if error else None)
        )
        where = json.dumps(update.to_dict() if isinstance(update, Update) else str(update))[:800]
        text = (
            f"<b>newsbot error</b>\n<pre>{html.escape(trace[-2500:])}</pre>\n"
            f"<pre>{html.escape(where)}</pre>"
        )
        try:
            await context.bot.send_message(state.settings.admin_chat_id, text, parse_mode="HTML")
        except TelegramError:
            log.warning("could not notify the admin chat")


async def on_my_chat_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log when the bot is added to or removed from a chat."""
    change = update.my_chat_member
    if change:
        log.info(
            "bot is now %s in %s %s",
            change.new_chat_member.status,
            change.chat.type,
            change.chat.id,
        )


def build_application(settings: Settings) -> Application:
    """The application with every handler registered."""
    builder = (
        ApplicationBuilder()
        .token(settings.telegram_token)
        .rate_limiter(AIORateLimiter(max_retries=5))
        .concurrent_updates(8)
        .post_init(post_init)
        .post_shutdown(post_shutdown)
    )
    if settings.telegram_api_url:
        base = settings.telegram_api_url.rstrip("/")
        builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
    application = builder.build()
    application.bot_data["state"] = BotState(
        settings=settings,
        limiter=UserRateLimiter(settings.user_rate_per_minute),
        # A sender may always send as many questions as the question limit allows.
        gate=FloodGate(
            settings.chat_rate_per_minute,
            max(settings.sender_rate_per_minute, settings.user_rate_per_minute),
        ),
    )

    # 0. Group -1 runs first for every update: the flood gate drops what a busy chat or
    #    sender sends beyond its budget (ApplicationHandlerStop), before it holds one of
    #    the 8 update slots waiting on Telegram's per-group limit.
    application.add_handler(TypeHandler(Update, flood.gate), group=-1)
    # Order matters within a group: the first matching handler wins.
    # 1. Commands (in any chat; /ask also in channel posts).
    application.add_handler(
        CommandHandler(["start", "help"], handlers.on_start, MESSAGES_AND_POSTS)
    )
    application.add_handler(CommandHandler("about", handlers.on_about, MESSAGES_AND_POSTS))
    application.add_handler(CommandHandler("ask", handlers.on_ask, MESSAGES_AND_POSTS))
    application.add_handler(CommandHandler("reindex", admin.on_reindex))
    application.add_handler(CommandHandler("ingest", admin.on_ingest))
    application.add_handler(CommandHandler("stats", admin.on_stats))
    application.add_handler(CommandHandler("delete", admin.on_delete))
    application.add_handler(CommandHandler("addfeed", sources.on_addfeed))
    application.add_handler(CommandHandler("feeds", sources.on_feeds))
    application.add_handler(CommandHandler("removefeed", sources.on_removefeed))
    application.add_handler(CommandHandler("addchannel", sources.on_addchannel, MESSAGES_AND_POSTS))
    application.add_handler(CommandHandler("approvechannel", sources.on_approvechannel))
    application.add_handler(
        CommandHandler("removechannel", sources.on_removechannel, MESSAGES_AND_POSTS)
    )
    # Subscriptions work in private chats, groups (their admins) and channels.
    application.add_handler(CommandHandler("follow", follow.on_follow, MESSAGES_AND_POSTS))
    application.add_handler(CommandHandler("following", follow.on_following, MESSAGES_AND_POSTS))
    application.add_handler(CommandHandler("unfollow", follow.on_unfollow, MESSAGES_AND_POSTS))
    application.add_handler(CommandHandler("digest", follow.on_digest, MESSAGES_AND_POSTS))
    # 2. Plain text: every private message is a question; in groups only mentions and
    #    replies to the bot (what a bot with privacy mode on receives anyway).
    text = filters.TEXT & ~filters.COMMAND & filters.UpdateType.MESSAGE
    application.add_handler(
        MessageHandler(filters.ChatType.PRIVATE & text, handlers.on_private_text)
    )
    application.add_handler(MessageHandler(filters.ChatType.GROUPS & text, handlers.on_group_text))
    # 3. Other posts of source channels, and their edits, become articles.
    posts = filters.UpdateType.CHANNEL_POSTS & (filters.TEXT | filters.CAPTION) & ~filters.COMMAND
    application.add_handler(MessageHandler(posts, sources.on_channel_post))
    # 4. Buttons and membership changes.
    application.add_handler(CallbackQueryHandler(handlers.on_more, pattern=r"^more:"))
    application.add_handler(ChatMemberHandler(on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    # Someone became or stopped being a group admin: forget the group's cached admins.
    application.add_handler(
        ChatMemberHandler(group_admins.on_chat_member, ChatMemberHandler.CHAT_MEMBER)
    )
    # 5. One error handler for everything.
    application.add_error_handler(on_error)
    return application
