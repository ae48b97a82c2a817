"""Sending rendered messages, with a plain-text fallback when Telegram rejects the HTML."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest

log = logging.getLogger(__name__)
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


async def reply_rendered(
    message: Message,
    html_messages: list[str],
    plain_messages: list[str],
    markup: InlineKeyboardMarkup | None = None,
) -> Message | None:
    """Reply with the HTML messages (markup on the last); resend as plain text if refused."""
    sent: Message | None = None
    for i, html in enumerate(html_messages):
        last = i == len(html_messages) - 1
        try:
            sent = await message.reply_html(
                html,
                do_quote=i == 0,
                reply_markup=markup if last else None,
                link_preview_options=NO_PREVIEW,
            )
        except BadRequest as exc:
            if "can't parse entities" not in str(exc).lower():
                raise
            log.warning("Telegram rejected our HTML (%s); sending plain text", exc)
            return await _reply_plain(message, plain_messages, markup)
    return sent


async def _reply_plain(
    message: Message, plain_messages: list[str], markup: InlineKeyboardMarkup | None
) -> Message | None:
    sent: Message | None = None
    for i, text in enumerate(plain_messages):
        last = i == len(plain_messages) - 1
        sent = await message.reply_text(
            text,
            do_quote=i == 0,
            reply_markup=markup if last else None,
            link_preview_options=NO_PREVIEW,
        )
    return sent


async def edit_html(message: Message, html: str) -> None:
    """Edit a message's HTML text, ignoring "message is not modified"."""
    try:
        await message.edit_text(html, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise
