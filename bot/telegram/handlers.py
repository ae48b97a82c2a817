"""Handlers for readers: questions in private chats, groups and channels; help; more sources.

Handlers only adapt: read the update, call the answer engine, render, reply.
"""

from __future__ import annotations

import logging
import re
import time
from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatAction
from telegram.ext import ContextTypes

from bot.answering.models import Answer
from bot.telegram import metrics, more_sources
from bot.telegram.context import state_of
from bot.telegram.flood import sender_id
from bot.telegram.render import plain_text, render_answer, render_quotes, strip_html
from bot.telegram.replies import reply_rendered
from corpus.text import valid_unicode

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 500

HELP = (
    "<b>Ask me about the news.</b> I answer from the articles I hold and quote them word for "
    "word, with outlet, date and link, so you can check. If they do not say, I tell you.\n\n"
    "• In a private chat, just write your question.\n"
    "• In a group: <code>/ask who signed with Zolotov?</code>, mention me, or reply to me.\n"
    "• In a channel where I am an admin: post <code>/ask your question</code>.\n\n"
    "/about shows what I know: how many articles, from when, from which outlets.\n\n"
    "<b>Follow the news:</b> <code>/follow Iran Russia security cooperation</code> posts new "
    "matching articles here; /following lists them, /unfollow ID stops one, "
    "<code>/digest 08:00</code> sends one message a day instead (UTC)."
)


def keyboard_for(answer: Answer, more_key: str | None) -> InlineKeyboardMarkup | None:
    """A "More sources" button (when there are further quotes) and a link to the article."""
    buttons = []
    if more_key:
        buttons.append(InlineKeyboardButton("More sources", callback_data=f"more:{more_key}"))
    if answer.quotes and answer.quotes[0].url and answer.quotes[0].url.startswith("http"):
        buttons.append(InlineKeyboardButton("Open article", url=answer.quotes[0].url))
    return InlineKeyboardMarkup([buttons]) if buttons else None


async def answer_question(
    update: Update, context: ContextTypes.DEFAULT_TYPE, question: str
) -> None:
    """Answer ``question`` in reply to the update's message."""
    state = state_of(context.bot_data)
    message = update.effective_message
    if message is None or state.engine is None:
        return
    question = valid_unicode(question).strip()
    if not question:
        await message.reply_text(
            "Ask me a question about the news, e.g. /ask who signed with Zolotov?"
        )
        return
    # Per sender: a user, or the chat an anonymous group admin or a channel writes as (all
    # anonymous admins share one user id, GroupAnonymousBot; a channel post has no user).
    sender = sender_id(update)
    wait = state.limiter.allow(sender) if sender is not None else 0.0
    if wait:
        await message.reply_text(
            f"You are asking faster than I can read. Please try again in {int(wait) + 1} s."
        )
        return
    cut_note = None
    if len(question) > MAX_QUESTION_CHARS:
        question = question[:MAX_QUESTION_CHARS]
        cut_note = f"(Your question was long; I read its first {MAX_QUESTION_CHARS} characters.)"
    await context.bot.send_chat_action(message.chat_id, ChatAction.TYPING)
    started = time.perf_counter()
    answer = await state.engine.answer(question)
    metrics.observe_answer(answer.abstained, time.perf_counter() - started)
    more_key = None
    if answer.more_quotes and state.services is not None:
        more_key = await more_sources.remember(
            state.services.store, message.chat_id, answer.more_quotes
        )
    html, plain = render_answer(answer), plain_text(answer)
    if cut_note:
        html[0] = f"<i>{escape(cut_note)}</i>\n\n{html[0]}"
        plain[0] = f"{cut_note}\n\n{plain[0]}"
    await reply_rendered(message, html, plain, keyboard_for(answer, more_key))


def _mentions_bot(update: Update, username: str) -> str | None:
    """The message text without the bot's @mention, if it mentions the bot.

    Read from the text, not the entities: their offsets count UTF-16 units, which a client
    may get wrong (half an emoji) or a lone surrogate makes unreadable."""
    message = update.effective_message
    if message is None or not message.text:
        return None
    mention = re.compile(rf"(?<![\w@])@{re.escape(username)}(?!\w)", re.I)
    if not mention.search(message.text):
        return None
    return mention.sub(" ", message.text).strip()


async def on_private_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Private chat: any text is a question."""
    if update.effective_message and update.effective_message.text:
        await answer_question(update, context, update.effective_message.text)


async def on_group_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Groups: a mention of the bot, or a reply to one of its messages, is a question."""
    message = update.effective_message
    if message is None or not message.text:
        return
    stripped = _mentions_bot(update, context.bot.username)
    if stripped is not None:
        await answer_question(update, context, stripped)
        return
    replied = message.reply_to_message
    if replied and replied.from_user and replied.from_user.id == context.bot.id:
        await answer_question(update, context, message.text)


async def on_ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/ask QUESTION in any chat (channel posts included)."""
    await answer_question(update, context, " ".join(context.args or []))


async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start and /help."""
    if update.effective_message:
        await update.effective_message.reply_html(HELP)


async def on_about(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/about: article count, date range, outlets."""
    state = state_of(context.bot_data)
    if update.effective_message is None or state.services is None:
        return
    stats = await state.services.store.stats()
    if not stats.articles:
        await update.effective_message.reply_text("I hold no articles yet.")
        return
    outlets = ", ".join(escape(s or "unknown") for s, _ in stats.sources[:10])
    more = f" and {len(stats.sources) - 10} more" if len(stats.sources) > 10 else ""
    await update.effective_message.reply_html(
        f"I hold <b>{stats.articles}</b> articles published from "
        f"{stats.first_date:%d %B %Y} to {stats.last_date:%d %B %Y}, "
        f"from {outlets}{more}."
    )


async def on_more(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The "More sources" button: the answer's further quotes, in the chat they were for."""
    query = update.callback_query
    if query is None or not query.data:
        return
    state = state_of(context.bot_data)
    quotes = None
    # The button's data comes from the client: its key counts only in its own chat.
    if query.message is not None and state.services is not None:
        key = query.data.partition(":")[2]
        quotes = await more_sources.recall(state.services.store, query.message.chat.id, key)
    if not quotes:
        await query.answer("That answer is too old to expand; please ask again.")
        return
    await query.answer()
    if query.message is None:
        return
    messages = render_quotes(quotes)
    await reply_rendered(query.message, messages, [strip_html(m) for m in messages])  # type: ignore[arg-type]
