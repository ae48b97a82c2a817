"""Sources that keep the corpus fresh: feeds (/addfeed, /feeds, /removefeed), channels
(/addchannel, /removechannel, and their posts becoming articles), and the polling job."""

from __future__ import annotations

import logging
from datetime import date
from html import escape

from telegram import Chat, Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.freshness import route_new_articles
from bot.telegram.admin import admin_only, url_policy
from bot.telegram.context import state_of
from corpus.feed_poller import poll_due, validate_feed_url
from corpus.feed_repo import FeedRepo
from corpus.fetch import FetchError
from corpus.ingest import ingest_one
from corpus.models import ArticleDraft, IngestReport

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
    if len(args) == 2 and args[1].isdigit():
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
    await message.reply_html("\n".join(lines))


@admin_only
async def on_removefeed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/removefeed ID."""
    message = update.effective_message
    assert message
    arg = (context.args or [""])[0]
    if not arg.isdigit():
        await message.reply_text("Usage: /removefeed ID (see /feeds).")
        return
    if await _feeds(context).remove(int(arg)):
        await message.reply_text(f"Feed {arg} removed; its articles stay.")
    else:
        await message.reply_text(f"There is no feed {arg}.")


async def on_addchannel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/addchannel in a channel (a channel post: only its admins can write one), or
    /addchannel CHAT_ID in a private chat by a bot admin."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    state = state_of(context.bot_data)
    title, username = chat.title, chat.username
    if chat.type != Chat.CHANNEL:
        user = update.effective_user
        if not state.is_admin(user.id if user else None):
            await message.reply_text("Sorry, only the bot's admins can do that.")
            return
        arg = (context.args or [""])[0]
        if not arg.lstrip("-").isdigit():
            await message.reply_text("Usage: /addchannel CHANNEL_ID, or post /addchannel in it.")
            return
        try:
            info = await context.bot.get_chat(int(arg))
        except TelegramError as exc:
            await message.reply_text(f"I cannot see that channel ({exc}); add me as an admin.")
            return
        chat_id, title, username = info.id, info.title, info.username
    else:
        chat_id = chat.id
    await _feeds(context).add_channel(chat_id, title or "", username, None)
    await message.reply_text(f"Posts of “{title}” will now become articles.")


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
        if not arg.lstrip("-").isdigit():
            await message.reply_text("Usage: /removechannel CHANNEL_ID")
            return
        target = int(arg)
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
        published_at=post.date.date() if post.date else date.today(),
        source=post.chat.title or "Telegram channel",
        url=post_link(post.chat, post.message_id),
        origin=f"channel:{post.chat.id}",
    )


async def on_channel_post(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A post (or an edit) in a source channel becomes (or updates) an article."""
    post = update.channel_post or update.edited_channel_post
    state = state_of(context.bot_data)
    if post is None or state.services is None:
        return
    repo = FeedRepo(state.services.store)
    if await repo.channel(post.chat.id) is None:
        return
    draft = post_to_draft(post)
    if draft is None:
        return
    report = IngestReport()
    article_id = await ingest_one(state.services.store, draft, report)
    if article_id is None or report.duplicates:
        return
    await repo.mark_channel_article(article_id, post.chat.id)
    await state.services.search.update()
    if report.added and await route_new_articles(state.services, report.added) and state.sender:
        await state.sender.send_due(context.bot)


async def poll_feeds_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Poll the due feeds, index what is new, and queue pushes for the chats that follow it."""
    state = state_of(context.bot_data)
    services = state.services
    if services is None or state.polling:
        return
    state.polling = True
    try:
        results = await poll_due(services.store, url_policy(context))
        added = [a for r in results for a in r.new_article_ids]
        changed = added + [a for r in results for a in r.updated_article_ids]
        for r in results:
            if r.error:
                log.warning("feed %s: %s", r.url, r.error)
        if changed:
            await services.search.update()
        if added and await route_new_articles(services, added) and state.sender:
            await state.sender.send_due(context.bot)  # now, not at the next tick
    finally:
        state.polling = False


async def send_pushes_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send due pushes and daily digests."""
    state = state_of(context.bot_data)
    if state.sender is None:
        return
    await state.sender.send_due(context.bot)
    await state.sender.send_digests(context.bot)
