"""Sending rendered HTML messages within Telegram's limits, with fallbacks for its refusals.

Every send splits its parts to Telegram's limit first (:func:`render.split_html`), then
handles what Telegram may still refuse:

- "message is too long" (it counted more than we did): that part is split in smaller
  pieces and sent;
- a refused inline keyboard (``BUTTON_URL_INVALID``, ``BUTTON_DATA_INVALID``, "can't parse
  inline keyboard button", "wrong HTTP URL"...): sent again without the buttons that look
  bad, then without the keyboard;
- "can't parse entities": that part and the ones after it go as plain text, and the
  parts already delivered are not sent again.

:func:`reply_rendered` answers a message; :func:`send_html` and :func:`send_html_parts`
send to a chat (pushes, digests).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest

from bot.telegram.render import html_to_plain, split_html, split_plain, utf16_len, visible_length

log = logging.getLogger(__name__)
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

# Substrings of Telegram's refusals (compared in lower case; PTB drops "Bad Request: ").
_PARSE_REFUSED = "can't parse entities"
_TOO_LONG = ("message is too long", "message_too_long", "text is too long")
_MARKUP_REFUSED = ("button", "inline keyboard", "reply markup", "http url")
# A part this short that Telegram still finds too long means something else is wrong.
_MIN_SPLIT_UNITS = 64
CALLBACK_DATA_BYTES = 64

# send(text, as_html, markup, first) -> the sent message
Send = Callable[[str, bool, InlineKeyboardMarkup | None, bool], Awaitable[Message]]


def _valid_url(url: str) -> bool:
    """Whether Telegram takes ``url`` for a button: http(s) with a host, or tg://."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return (scheme in ("http", "https") and bool(parts.hostname)) or scheme == "tg"


def _valid_button(button: InlineKeyboardButton) -> bool:
    """Whether a button passes the checks Telegram makes on its URL and callback data."""
    if button.url is not None and not _valid_url(button.url):
        return False
    data = button.callback_data
    # Non-string data (arbitrary_callback_data) is replaced by PTB with a short id.
    return not isinstance(data, str) or 1 <= len(data.encode("utf-8")) <= CALLBACK_DATA_BYTES


def _without_bad_buttons(markup: InlineKeyboardMarkup) -> InlineKeyboardMarkup | None:
    """The keyboard without buttons Telegram would refuse (None if none is left)."""
    rows = [[b for b in row if _valid_button(b)] for row in markup.inline_keyboard]
    rows = [row for row in rows if row]
    return InlineKeyboardMarkup(rows) if rows else None


def _smaller(text: str, as_html: bool) -> list[str]:
    """``text`` in about two halves, for a part Telegram found too long."""
    length = visible_length(text) if as_html else utf16_len(text)
    if length <= _MIN_SPLIT_UNITS:
        return [text]
    return split_html(text, length // 2) if as_html else split_plain(text, length // 2)


def _plain_parts(html_parts: Sequence[str], given: Sequence[str] | None) -> list[str]:
    """Plain-text parts: ``given`` when the caller wrote them, else derived from the HTML."""
    texts = list(given) if given else [html_to_plain(part) for part in html_parts]
    return [piece for text in texts for piece in split_plain(text)]


async def deliver(
    send: Send,
    html_parts: Sequence[str],
    plain_parts: Sequence[str] | None = None,
    markup: InlineKeyboardMarkup | None = None,
) -> list[Message]:
    """Send ``html_parts`` in order through ``send``, ``markup`` on the last message.

    ``plain_parts`` (optional) replace the whole text if Telegram refuses the HTML of the
    first part; when it refuses a later part, that part and the rest are sent as plain
    text derived from their HTML. Errors that no fallback fixes are raised, after the
    parts before them were delivered. Returns the messages sent.
    """
    queue = deque(piece for part in html_parts for piece in split_html(part))
    if not queue:  # nothing visible: let Telegram answer (it refuses an empty text)
        queue = deque(html_parts)
    as_html = True
    buttons = markup
    sent: list[Message] = []
    while queue:
        text, last = queue[0], len(queue) == 1
        try:
            message = await send(text, as_html, buttons if last else None, not sent)
        except BadRequest as exc:
            reason = str(exc).lower()
            if as_html and _PARSE_REFUSED in reason:
                log.warning("Telegram refused our HTML (%s); sending the rest as plain text", exc)
                as_html = False
                queue = deque(_plain_parts(queue, None if sent else plain_parts) or queue)
                continue
            if any(s in reason for s in _TOO_LONG):
                pieces = _smaller(text, as_html)
                if len(pieces) < 2:
                    raise
                log.warning("Telegram found a part too long; sending it in %d", len(pieces))
                queue.popleft()
                queue.extendleft(reversed(pieces))
                continue
            if last and buttons is not None and any(s in reason for s in _MARKUP_REFUSED):
                log.warning("Telegram refused our buttons (%s); sending without them", exc)
                fewer = _without_bad_buttons(buttons) if buttons is markup else None
                buttons = fewer if fewer != buttons else None
                continue
            raise
        queue.popleft()
        sent.append(message)
    return sent


async def reply_rendered(
    message: Message,
    html_messages: Sequence[str],
    plain_messages: Sequence[str] | None = None,
    markup: InlineKeyboardMarkup | None = None,
) -> Message | None:
    """Reply with the HTML messages (markup on the last), quoting the question in the first.

    Falls back as :func:`deliver` does; returns the last message sent (None if none).
    """

    async def send(
        text: str, as_html: bool, buttons: InlineKeyboardMarkup | None, first: bool
    ) -> Message:
        return await message.reply_text(
            text,
            parse_mode=ParseMode.HTML if as_html else None,
            do_quote=first,
            reply_markup=buttons,
            link_preview_options=NO_PREVIEW,
        )

    sent = await deliver(send, html_messages, plain_messages, markup)
    return sent[-1] if sent else None


async def send_html_parts(
    bot: Bot,
    chat_id: int,
    html: str | Sequence[str],
    *,
    reply_markup: InlineKeyboardMarkup | None = None,
    **kwargs: Any,
) -> list[Message]:
    """Send HTML to a chat, split to Telegram's limit; returns every message sent.

    ``reply_markup`` goes on the last message, ``reply_parameters`` (or
    ``reply_to_message_id``) on the first; other keyword arguments (``message_thread_id``,
    ``disable_notification``...) go to every ``send_message``. Link previews are off
    unless ``link_preview_options`` says otherwise. Falls back as :func:`deliver` does;
    the other errors (429, 403, network) are raised for the caller to handle.
    """
    parts = [html] if isinstance(html, str) else list(html)
    kwargs.setdefault("link_preview_options", NO_PREVIEW)
    first_only = {
        k: kwargs.pop(k) for k in ("reply_parameters", "reply_to_message_id") if k in kwargs
    }

    async def send(
        text: str, as_html: bool, buttons: InlineKeyboardMarkup | None, first: bool
    ) -> Message:
        return await bot.send_message(
            chat_id,
            text,
            parse_mode=ParseMode.HTML if as_html else None,
            reply_markup=buttons,
            **kwargs,
            **(first_only if first else {}),
        )

    return await deliver(send, parts, None, reply_markup)


async def send_html(
    bot: Bot,
    chat_id: int,
    html: str | Sequence[str],
    *,
    reply_markup: InlineKeyboardMarkup | None = None,
    **kwargs: Any,
) -> Message:
    """Send HTML to a chat like :func:`send_html_parts`; returns the first message sent
    (the one a delivery log points to when a long push or digest needs several).

    Raises ``BadRequest("Message text is empty")`` for no parts at all, as Telegram would.
    """
    sent = await send_html_parts(bot, chat_id, html, reply_markup=reply_markup, **kwargs)
    if not sent:
        raise BadRequest("Message text is empty")
    return sent[0]


async def edit_html(message: Message, html: str) -> None:
    """Edit a message's HTML text, ignoring "message is not modified"."""
    try:
        await message.edit_text(html, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW)
    except BadRequest as exc:
        if "not modified" not in str(exc).lower():
            raise
