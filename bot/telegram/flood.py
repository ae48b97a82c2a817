"""The flood gate: the first handler every update meets (handler group -1).

Why: handlers that reply into a busy group wait inside PTB's AIORateLimiter (Telegram
allows about 20 messages a minute per group) while holding one of the application's
concurrent update slots; a flood in one group would hold them all and stall every other
chat. The gate counts the updates the bot would answer, per group or channel and per
sender, and drops the excess before any handler runs, without replying (but for one
"slow down" note per chat and window), so a dropped update holds no slot.
"""

from __future__ import annotations

import contextlib
import logging

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, ContextTypes

from bot.telegram.context import state_of
from bot.telegram.ratelimit import Verdict

log = logging.getLogger(__name__)


def sender_id(update: Update) -> int | None:
    """Whom a per-sender budget is for: the user; for an anonymous group admin the group
    (the chat it writes as); for a channel post the channel; for a button the user."""
    sender = update.effective_sender
    if sender is not None:
        return sender.id
    return update.effective_chat.id if update.effective_chat else None


def _command_for_us(text: str, username: str) -> bool:
    """``/cmd`` or ``/cmd@us``; not ``/cmd@otherbot`` (which no handler of ours takes)."""
    if not text.startswith("/"):
        return False
    _, at, target = text.split(maxsplit=1)[0].partition("@")
    return not at or target.lower() == username.lower()


def wants_reply(update: Update, username: str, bot_id: int) -> bool:
    """Whether some handler would write back for this update (only those are counted).

    Other updates are cheap (group chatter the bot ignores, channel posts that become
    articles, membership changes) and never wait on Telegram's per-chat limits.
    """
    if update.callback_query is not None:
        return True
    message: Message | None = (
        update.message or update.edited_message or update.channel_post
    )  # an edited channel post only updates an article
    if message is None or not message.text:
        return False
    if _command_for_us(message.text, username):
        return True
    if update.edited_message is not None or update.channel_post is not None:
        return False  # edits and channel posts are answered only when they are commands
    if message.chat.type == ChatType.PRIVATE:
        return True  # every private text is a question
    replied = message.reply_to_message
    return f"@{username.lower()}" in message.text.lower() or bool(
        replied and replied.from_user and replied.from_user.id == bot_id
    )


def note_text(verdict: Verdict) -> str:
    """The one "slow down" note of a window."""
    seconds = int(verdict.wait) + 1
    if verdict.by_chat:
        return (
            f"This chat is writing to me faster than I can read. I will answer again in "
            f"{seconds} s."
        )
    return f"You are asking faster than I can read. Please try again in {seconds} s."


async def gate(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Let an update through to the handlers, or drop it (ApplicationHandlerStop)."""
    if not isinstance(update, Update):
        return
    chat, sender = update.effective_chat, sender_id(update)
    if chat is None or sender is None:
        return
    if not wants_reply(update, context.bot.username, context.bot.id):
        return
    state = state_of(context.bot_data)
    verdict = state.gate.check(chat.id, sender, shared_chat=chat.type != ChatType.PRIVATE)
    if verdict.allowed:
        return
    if verdict.note:
        log.info(
            "flood gate: dropping updates from %s in chat %s for %.0f s",
            sender,
            chat.id,
            verdict.wait,
        )
        with contextlib.suppress(TelegramError):  # best effort: the drop is what matters
            if update.callback_query is not None:
                await update.callback_query.answer(note_text(verdict))
            elif update.effective_message is not None:
                await update.effective_message.reply_text(note_text(verdict))
    raise ApplicationHandlerStop
