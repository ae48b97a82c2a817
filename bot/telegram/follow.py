"""Subscriptions: /follow, /following, /unfollow, /digest in private chats, groups and channels.

In groups only the group's admins (from a cached getChatAdministrators list, see
``group_admins``) may change what the group follows; in channels the commands arrive as
channel posts, which only the channel's admins can write.
"""

from __future__ import annotations

import logging
import re
from functools import wraps
from html import escape

from telegram import Chat, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot.telegram.admin import Handler
from bot.telegram.args import parse_id
from bot.telegram.context import state_of
from bot.telegram.render import pack
from bot.telegram.replies import reply_rendered
from corpus.feed_repo import FeedRepo
from corpus.subscription_repo import SubscriptionRepo
from corpus.text import valid_unicode

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
MAX_TOPIC_CHARS = 200
MAX_SUBSCRIPTIONS_PER_CHAT = 50

log = logging.getLogger(__name__)


async def may_manage(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Private chats and channel posts may; in groups only the group's admins."""
    chat, user, message = update.effective_chat, update.effective_user, update.effective_message
    if chat is None:
        return False
    if chat.type in (ChatType.PRIVATE, ChatType.CHANNEL):
        return True
    if message is not None and message.sender_chat is not None:
        # Only admins can write anonymously, as the group itself; someone writing as a
        # channel (or a linked channel's forwarded post) is no admin of the group.
        return message.sender_chat.id == chat.id
    if user is None:
        return False
    try:
        admins = await state_of(context.bot_data).admins.admin_ids(context.bot, chat.id)
    except TelegramError as exc:  # cannot tell: refuse, and ask again next time
        log.warning("could not read the admins of chat %s: %s", chat.id, exc)
        return False
    return user.id in admins


def managers_only(handler: Handler) -> Handler:
    """Run ``handler`` for those who may change what the chat follows; refuse others."""

    @wraps(handler)
    async def guarded(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None or update.effective_chat is None:
            return
        if not await may_manage(update, context):
            await message.reply_text("Only this group's admins can change what it follows.")
            return
        await handler(update, context)

    return guarded


def _repo(context: ContextTypes.DEFAULT_TYPE) -> SubscriptionRepo:
    services = state_of(context.bot_data).services
    assert services is not None
    return SubscriptionRepo(services.store)


async def _record_chat(repo: SubscriptionRepo, chat: Chat) -> None:
    await repo.upsert_chat(chat.id, chat.type, valid_unicode(chat.title or chat.full_name or ""))
    await repo.resume_chat(chat.id)  # a chat that speaks to us again is reachable again


@managers_only
async def on_follow(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/follow <topic words or a question> | /follow feed ID."""
    message, chat = update.effective_message, update.effective_chat
    assert message is not None and chat is not None  # checked by @managers_only
    args = context.args or []
    if not args:
        await message.reply_text(
            "Usage: /follow <topic words or a question>, e.g. /follow Iran Russia security "
            "cooperation; or /follow feed ID (see /feeds)."
        )
        return
    repo = _repo(context)
    if len(await repo.for_chat(chat.id)) >= MAX_SUBSCRIPTIONS_PER_CHAT:
        await message.reply_text("This chat follows 50 things already; /unfollow some first.")
        return
    await _record_chat(repo, chat)
    user_id = update.effective_user.id if update.effective_user else None
    feed_id = parse_id(args[1]) if len(args) == 2 else None
    if args[0].lower() == "feed" and feed_id is not None:
        feed = await FeedRepo(repo.store).get(feed_id)
        if feed is None:
            await message.reply_text(f"There is no feed {args[1]}.")
            return
        sub = await repo.add(chat.id, "feed", feed_id=feed.id, created_by=user_id)
        what = f"feed {feed.id} ({escape(feed.title or feed.url)})"
    else:
        topic = valid_unicode(" ".join(args))[:MAX_TOPIC_CHARS]
        sub = await repo.add(chat.id, "topic", query=topic, created_by=user_id)
        services = state_of(context.bot_data).services
        assert services is not None
        await services.topic_matcher()  # embeds the new topic now, not at the next article
        what = f"“{escape(topic)}”"
    await message.reply_html(
        f"Following {what} as #{sub.id}. New matching articles will be posted here. "
        "/following lists what this chat follows."
    )


async def on_following(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/following: this chat's subscriptions and delivery mode."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    repo = _repo(context)
    subs = await repo.for_chat(chat.id)
    if not subs:
        await message.reply_text("This chat follows nothing yet. Try /follow <topic>.")
        return
    lines = []
    for sub in subs:
        what = f"feed {sub.feed_id}" if sub.kind == "feed" else f"“{escape(sub.query)}”"
        lines.append(f"#{sub.id} {what}")
    info = await repo.chat(chat.id)
    if info and info.paused_reason:
        lines.append("<i>Pushes are paused: I could not reach this chat.</i>")
    mode = f"a daily digest at {info.digest_time} UTC" if info and info.digest_time else "instant"
    lines.append(f"Delivery: {mode}. /unfollow ID stops one; /digest HH:MM or /digest off.")
    # 50 topics of 200 characters exceed one message: cut between lines.
    await reply_rendered(message, pack(lines, separator="\n"))


@managers_only
async def on_unfollow(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/unfollow ID."""
    message, chat = update.effective_message, update.effective_chat
    assert message is not None and chat is not None  # checked by @managers_only
    arg = (context.args or [""])[0].lstrip("#")
    sub_id = parse_id(arg)
    if sub_id is None:
        await message.reply_text("Usage: /unfollow ID (see /following).")
        return
    services = state_of(context.bot_data).services
    assert services is not None
    if await _repo(context).remove(chat.id, sub_id):
        await services.topic_matcher()  # drops the removed topic
        await message.reply_text(f"Stopped following #{arg}.")
    else:
        await message.reply_text(f"This chat does not follow #{arg}.")


@managers_only
async def on_digest(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/digest HH:MM (UTC) for one daily message instead of instant pushes; /digest off."""
    message, chat = update.effective_message, update.effective_chat
    assert message is not None and chat is not None  # checked by @managers_only
    arg = (context.args or [""])[0].lower()
    repo = _repo(context)
    await _record_chat(repo, chat)
    if arg == "off":
        await repo.set_digest(chat.id, None)
        await message.reply_text("Digest off: new articles will be posted as they come.")
        return
    match = _HHMM.match(arg)
    if not match:
        await message.reply_text("Usage: /digest HH:MM (UTC), e.g. /digest 08:00; or /digest off.")
        return
    hhmm = f"{int(match.group(1)):02d}:{match.group(2)}"
    await repo.set_digest(chat.id, hhmm)
    await message.reply_text(
        f"Digest on: one message a day at {hhmm} UTC with the new articles this chat follows."
    )
