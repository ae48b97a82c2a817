"""Sources that keep the corpus fresh: feeds (/addfeed, /feeds, /removefeed), channels
(/addchannel, /approvechannel, /removechannel, and their posts becoming articles), and
the jobs that poll feeds and route and send what is new.

Anyone can make the bot an admin of their own channel, so a channel's own /addchannel
only asks: its posts count as news once a bot admin approved it. Articles from every
source are saved with their route row (see bot/routing.py); the index catches up in
the background (IndexUpdater), so no handler waits for it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from html import escape

from telegram import Chat, Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.routing import route_pending
from bot.telegram.admin import admin_only, url_policy
from bot.telegram.args import parse_id
from bot.telegram.context import BotState, state_of
from bot.telegram.render import pack
from bot.telegram.replies import reply_rendered
from corpus.feed_poller import poll_due, validate_feed_url
from corpus.feed_repo import FeedRepo
from corpus.fetch import FetchError
from corpus.ingest import ingest_one
from corpus.models import ArticleDraft, IngestReport
from corpus.subscription_repo import SubscriptionRepo

log = logging.getLogger(__name__)
MIN_POST_WORDS = 5
MIN_INTERVAL, MAX_INTERVAL = 5, 24 * 60


def _feeds(context: ContextTypes.DEFAULT_TYPE) -> FeedRepo:
    services = state_of(context.bot_data).services
    assert services is not None
    return FeedRepo(services.store)


@admin_only
async def on_addfeed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/addfeed URL [minutes]: poll a feed at that interval (default from settings)."""
    message = update.effective_message
    assert message
    args = context.args or []
    settings = state_of(context.bot_data).settings
    minutes = settings.feed_poll_minutes
    if len(args) == 2 and parse_id(args[1]) is not None:
        minutes = int(args[1])
    if not args or len(args) > 2 or not MIN_INTERVAL <= minutes <= MAX_INTERVAL:
        await message.reply_text(
            f"Usage: /addfeed URL [minutes] (every {MIN_INTERVAL} to {MAX_INTERVAL} minutes)."
        )
        return
    try:
        validate_feed_url(args[0], url_policy(context))
    except FetchError as exc:
        await message.reply_text(f"I cannot follow that URL: {exc}")
        return
    user = update.effective_user
    feed = await _feeds(context).add(args[0], minutes, user.id if user else None)
    await message.reply_text(
        f"Feed {feed.id} added: polled every {feed.interval_minutes} minutes, the first time now. "
        f"Chats can /follow feed {feed.id}."
    )
    if context.job_queue:
        context.job_queue.run_once(poll_feeds_job, 0, name="poll-now")


@admin_only
async def on_feeds(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/feeds: every feed with its last fetch, last error and next run."""
    message = update.effective_message
    assert message
    feeds = await _feeds(context).all()
    if not feeds:
        await message.reply_text("No feeds yet. /addfeed URL [minutes] adds one.")
        return
    lines = []
    for f in feeds:
        last = f.last_fetch_at.strftime("%Y-%m-%d %H:%M") if f.last_fetch_at else "never"
        error = f"\n   last error: {escape(f.last_error)}" if f.last_error else ""
        lines.append(
            f"<b>{f.id}</b> {escape(f.title or f.url)}\n   {escape(f.url)}\n"
            f"   every {f.interval_minutes} min; last fetch {last}; "
            f"next {f.next_run_at:%Y-%m-%d %H:%M} UTC{error}"
        )
    # Many feeds exceed one message: cut between feeds, never inside one's lines.
    await reply_rendered(message, pack(lines, separator="\n"))


@admin_only
async def on_removefeed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/removefeed ID."""
    message = update.effective_message
    assert message
    arg = (context.args or [""])[0]
    feed_id = parse_id(arg)
    if feed_id is None:
        await message.reply_text("Usage: /removefeed ID (see /feeds).")
        return
    if await _feeds(context).remove(feed_id):
        await message.reply_text(f"Feed {arg} removed; its articles stay.")
    else:
        await message.reply_text(f"There is no feed {arg}.")


async def on_addchannel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/addchannel CHAT_ID in a private chat by a bot admin: the channel is a source.
    /addchannel posted in a channel: a request the bot's admins approve with
    /approvechannel CHAT_ID (a channel's word alone gives it no rights)."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    state = state_of(context.bot_data)
    if chat.type == Chat.CHANNEL:
        asked_before = await _feeds(context).channel(chat.id) is not None
        source = await _feeds(context).add_channel(
            chat.id, chat.title or "", chat.username, None, approved=False
        )
        if source.approved:
            await message.reply_text("This channel's posts already become articles.")
            return
        await message.reply_text(
            "Asked the bot's admins: this channel's posts become articles once they approve."
        )
        if state.notify_admins and not asked_before:  # admins hear of a channel once
            await state.notify_admins(
                f"Channel “{escape(chat.title or '')}” ({chat.id}"
                f"{', @' + escape(chat.username) if chat.username else ''}) asks to become a "
                f"news source. /approvechannel {chat.id} to accept."
            )
        return
    user = update.effective_user
    if not state.is_admin(user.id if user else None):
        await message.reply_text("Sorry, only the bot's admins can do that.")
        return
    arg = (context.args or [""])[0]
    channel_id = parse_id(arg, negative=True)
    if channel_id is None:
        await message.reply_text("Usage: /addchannel CHANNEL_ID, or post /addchannel in it.")
        return
    try:
        info = await context.bot.get_chat(channel_id)
    except TelegramError as exc:
        await message.reply_text(f"I cannot see that channel ({exc}); add me as an admin.")
        return
    assert user is not None  # checked by is_admin
    await _feeds(context).add_channel(info.id, info.title or "", info.username, user.id)
    await message.reply_text(f"Posts of “{info.title}” will now become articles.")


@admin_only
async def on_approvechannel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/approvechannel CHAT_ID: a bot admin accepts a channel that asked."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None  # checked by @admin_only
    arg = (context.args or [""])[0]
    channel_id = parse_id(arg, negative=True)
    if channel_id is None:
        await message.reply_text("Usage: /approvechannel CHANNEL_ID")
        return
    source = await _feeds(context).approve_channel(channel_id, user.id)
    if source is None:
        await message.reply_text(f"No channel {arg} asked to become a source.")
        return
    await message.reply_text(f"Posts of “{source.title}” will now become articles.")


async def on_removechannel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/removechannel (in the channel) or /removechannel CHAT_ID (bot admins, privately)."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    target = chat.id
    if chat.type != Chat.CHANNEL:
        user = update.effective_user
        arg = (context.args or [""])[0]
        if not state_of(context.bot_data).is_admin(user.id if user else None):
            await message.reply_text("Sorry, only the bot's admins can do that.")
            return
        channel_id = parse_id(arg, negative=True)
        if channel_id is None:
            await message.reply_text("Usage: /removechannel CHANNEL_ID")
            return
        target = channel_id
    removed = await _feeds(context).remove_channel(target)
    await message.reply_text(
        "Channel removed as a source." if removed else "That channel is not a source."
    )


def post_link(chat: Chat, message_id: int) -> str:
    """The t.me link of a channel post (public channels by name, private ones by id)."""
    if chat.username:
        return f"https://t.me/{chat.username}/{message_id}"
    return f"https://t.me/c/{str(chat.id).removeprefix('-100')}/{message_id}"


def post_to_draft(post: Message) -> ArticleDraft | None:
    """A channel post as an article: its first line is the title, the whole post the text."""
    text = (post.text or post.caption or "").strip()
    if len(text.split()) < MIN_POST_WORDS:
        return None
    title = text.split("\n", 1)[0].strip()
    if len(title) > 120:
        title = title[:117].rsplit(" ", 1)[0] + "…"
    return ArticleDraft(
        title=title,
        text=text,
        published_at=post.date.date() if post.date else datetime.now(UTC).date(),
        source=post.chat.title or "Telegram channel",
        url=post_link(post.chat, post.message_id),
        origin=f"channel:{post.chat.id}",
    )


async def on_channel_post(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A post (or an edit) in an approved source channel becomes (or updates) an article."""
    post = update.channel_post or update.edited_channel_post
    state = state_of(context.bot_data)
    if post is None or state.services is None:
        return
    repo = FeedRepo(state.services.store)
    source = await repo.channel(post.chat.id)
    if source is None or not source.approved:
        return
    draft = post_to_draft(post)
    if draft is None:
        return
    report = IngestReport()
    link = repo.channel_linker(post.chat.id)
    await ingest_one(state.services.store, draft, report, link=link)
    if report.added or report.updated:
        state.request_index()
    if report.added:
        await _route_and_send(state, context)


async def poll_feeds_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Poll the due feeds; the index catches up in the background, pushes go out now."""
    state = state_of(context.bot_data)
    services = state.services
    if services is None or state.polling:
        return
    state.polling = True
    try:
        results = await poll_due(services.store, url_policy(context))
        for r in results:
            if r.error:
                log.warning("feed %s: %s", r.url, r.error)
        if any(r.changed_ids for r in results):
            state.request_index()
        if any(r.new_article_ids for r in results):
            await _route_and_send(state, context)
    finally:
        state.polling = False


async def _route_and_send(state: BotState, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Route what waits and send what is due now, not at the next tick."""
    if await _route(state) and state.sender:
        await state.sender.send_due(context.bot)


async def _route(state: BotState) -> int:
    """Route the waiting articles; the matcher (which reads every subscription) is only
    brought up to date when there is something to route."""
    services = state.services
    assert services is not None
    if not await SubscriptionRepo(services.store).routes_waiting(1):
        return 0
    return await route_pending(services.store, await services.topic_matcher())


async def outbox_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Every tick: route waiting articles (whoever saved them: this process, the CLI, a
    cron poll), then send due pushes and daily digests."""
    state = state_of(context.bot_data)
    if state.sender is None or state.services is None:
        return
    await _route(state)
    await state.sender.send_due(context.bot)
    await state.sender.send_digests(context.bot)
