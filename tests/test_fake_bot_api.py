"""Prove that python-telegram-bot's real ``Bot`` / ``Application`` work against FakeBotApi."""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from tests.fake_bot_api import FakeBotApi

USER = 4242
GROUP = -1001234567890
CHANNEL = -1009876543210


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    """A running fake Bot API server."""
    with FakeBotApi() as server:
        yield server


@pytest_asyncio.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    """An initialized PTB Bot talking to the fake server."""
    async with Bot(api.token, base_url=api.base_url) as tg_bot:
        yield tg_bot


def _seconds(value: int | float | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# ---------------------------------------------------------------- basics
@pytest.mark.asyncio
async def test_get_me_parses(bot: Bot, api: FakeBotApi) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "newsbot_test_bot")
    assert bot.username == "newsbot_test_bot"
    assert api.base_url.startswith("http://127.0.0.1:") and api.base_url.endswith("/bot")
    assert api.calls("getMe") and api.calls("GETME")


@pytest.mark.asyncio
async def test_wrong_token_and_unknown_method(bot: Bot, api: FakeBotApi) -> None:
    with pytest.raises(InvalidToken, match="rejected by the server"):
        async with Bot("999:WRONG", base_url=api.base_url) as wrong:
            await wrong.get_me()
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("definitelyNotAMethod")
    assert api.calls("definitelyNotAMethod")[0].status == 404


def test_http_encodings_json_multipart_and_case_insensitive(api: FakeBotApi) -> None:
    api.private_message(USER, "hi")
    url = f"{api.base_url}{api.token}"
    res = httpx.post(f"{url}/SENDMESSAGE", json={"chat_id": USER, "text": "via json"})
    assert res.json()["ok"] and res.json()["result"]["text"] == "via json"
    res = httpx.post(
        f"{url}/sendMessage",
        data={"chat_id": str(USER), "text": "123"},
        files={"doc": ("a.txt", b"abc")},
    )
    assert res.json()["result"]["text"] == "123"
    params = api.calls("sendMessage")[-1].params
    assert params == {"chat_id": USER, "text": "123", "doc": {"filename": "a.txt", "size": 3}}
    res = httpx.get(f"{url}/getMe")
    assert res.json()["result"]["id"] == 123456


# ---------------------------------------------------------------- send / edit / HTML
@pytest.mark.asyncio
async def test_send_and_edit_roundtrip(bot: Bot, api: FakeBotApi) -> None:
    incoming = api.private_message(USER, "hello")
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Open", callback_data="open:1")]])
    sent = await bot.send_message(
        USER,
        "<b>News</b> &amp; more",
        parse_mode="HTML",
        reply_markup=keyboard,
        reply_to_message_id=incoming["message_id"],
    )
    assert sent.text == "News & more" and sent.from_user.id == 123456
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [("bold", 0, 4)]
    assert sent.reply_to_message.text == "hello" and sent.reply_markup == keyboard
    assert sent.chat.type == "private" and sent.chat.first_name == "Ann"

    edited = await bot.edit_message_text("Edited", chat_id=USER, message_id=sent.message_id)
    assert edited.text == "Edited" and edited.edit_date is not None
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("Edited", chat_id=USER, message_id=sent.message_id)
    [stored] = api.bot_messages(USER)
    assert stored["text"] == "Edited" and [e["previous_text"] for e in stored["edits"]] == [
        "News & more"
    ]
    assert api.wait_for_message(USER, contains="Edit", timeout=1)["message_id"] == sent.message_id


@pytest.mark.asyncio
async def test_html_entities_accepted(bot: Bot, api: FakeBotApi) -> None:
    api.private_message(USER, "hi")
    html = (
        '<b>b</b><i>i</i><u>u</u><s>s</s><a href="https://ex.com/?a=1&amp;b=2">link</a>'
        '<code>c</code><pre><code class="language-python">p</code></pre>'
        "<blockquote expandable>q</blockquote><tg-spoiler>x</tg-spoiler>"
        '<span class="tg-spoiler">y</span> 😀&lt;&#62;&quot;&#x41;'
    )
    msg = await bot.send_message(USER, html, parse_mode="HTML")
    assert msg.text == 'biuslinkcpqxy 😀<>"A'
    types = {e.type: e for e in msg.entities}
    assert types["text_link"].url == "https://ex.com/?a=1&b=2"
    assert types["pre"].language == "python"
    assert "expandable_blockquote" in types and "spoiler" in types
    assert msg.parse_entities()[types["text_link"]] == "link"
    emoji = await bot.send_message(USER, "😀 <b>x</b>", parse_mode="HTML")
    assert [(e.offset, e.length) for e in emoji.entities] == [(3, 1)]  # UTF-16 offsets


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "html",
    [
        "<b>bold",
        "<foo>x</foo>",
        "a < b",
        "AT&T rocks",
        "<b><i>x</b></i>",
        "<a>no href</a>",
        "x</b>",
        "&bogus;",
    ],
)
async def test_html_entities_rejected(bot: Bot, api: FakeBotApi, html: str) -> None:
    api.private_message(USER, "hi")
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(USER, html, parse_mode="HTML")
    assert not api.bot_messages(USER)


@pytest.mark.asyncio
async def test_length_limit_counts_after_parsing(bot: Bot, api: FakeBotApi) -> None:
    api.private_message(USER, "hi")
    ok = await bot.send_message(USER, "&amp;" * 4096, parse_mode="HTML")
    assert len(ok.text) == 4096
    await bot.send_message(USER, "😀" * 2048)  # 2 UTF-16 code units each
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(USER, "x" * 4097)
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(USER, "😀" * 2049)
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(USER, "<b> </b>", parse_mode="HTML")


# ---------------------------------------------------------------- faults
@pytest.mark.asyncio
async def test_fault_429_surfaces_as_retry_after(bot: Bot, api: FakeBotApi) -> None:
    api.private_message(USER, "hi")
    api.inject_fault("sendMessage", "429", retry_after=3)
    with pytest.raises(RetryAfter) as info:
        await bot.send_message(USER, "x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _seconds(info.value.retry_after) == 3
    await bot.send_message(USER, "x")  # the retry succeeds
    assert [c.fault for c in api.calls("sendMessage")] == ["429", None]
    assert api.calls("sendMessage")[0].faulted and api.calls("sendMessage")[0].status == 429


@pytest.mark.asyncio
async def test_fault_500_and_drop_surface_as_network_errors(bot: Bot, api: FakeBotApi) -> None:
    api.private_message(USER, "hi")
    api.inject_fault("sendMessage", "500")
    with pytest.raises(NetworkError) as info:
        await bot.send_message(USER, "x")
    assert isinstance(info.value, TelegramError) and "Internal Server Error" in str(info.value)
    api.inject_fault("sendMessage", "drop")
    with pytest.raises(NetworkError):
        await bot.send_message(USER, "x")
    api.inject_fault("sendMessage", "bad_entities")
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(USER, "x")
    assert (await bot.send_message(USER, "fine")).text == "fine"


@pytest.mark.asyncio
async def test_fault_slow_delays_then_answers(bot: Bot, api: FakeBotApi) -> None:
    api.private_message(USER, "hi")
    api.inject_fault("sendChatAction", "slow", count=2, delay=0.3)
    start = time.monotonic()
    assert await bot.send_chat_action(USER, "typing")
    assert await bot.send_chat_action(USER, "typing")
    assert time.monotonic() - start >= 0.6
    assert await bot.send_chat_action(USER, "typing")
    assert [c.fault for c in api.calls("sendChatAction")] == ["slow", "slow", None]


# ---------------------------------------------------------------- chats: blocked / unknown
@pytest.mark.asyncio
async def test_blocked_and_unknown_chats(bot: Bot, api: FakeBotApi) -> None:
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(777, "never seen")
    api.private_message(USER, "hi")
    api.block_chat(USER)
    with pytest.raises(Forbidden, match="blocked by the user"):
        await bot.send_message(USER, "x")
    api.block_chat(USER, blocked=False)
    await bot.send_message(USER, "x")
    api.group_message(GROUP, USER, "hi")
    api.block_chat(GROUP)
    with pytest.raises(Forbidden, match="kicked from the supergroup"):
        await bot.send_message(GROUP, "x")
    api.forget_chat(USER)
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_chat_action(USER, "typing")


@pytest.mark.asyncio
async def test_chat_members_and_get_chat(bot: Bot, api: FakeBotApi) -> None:
    api.group_message(GROUP, USER, "hi", title="News fans")
    api.set_member_status(-1001, 1, "creator")  # control calls create chats implicitly
    assert (await bot.get_chat(-1001)).type == "supergroup"
    api.set_member_status(GROUP, 1, "creator")
    api.set_member_status(GROUP, 2, "administrator")
    api.set_member_status(GROUP, 3, "restricted")
    for uid, status in [
        (USER, "member"),
        (1, "creator"),
        (2, "administrator"),
        (3, "restricted"),
        (4, "member"),
    ]:
        assert (await bot.get_chat_member(GROUP, uid)).status == status
    api.set_member_status(GROUP, 5, "kicked")
    assert (await bot.get_chat_member(GROUP, 5)).status == "kicked"
    admins = await bot.get_chat_administrators(GROUP)
    assert sorted(a.user.id for a in admins) == [1, 2]
    chat = await bot.get_chat(GROUP)
    assert (chat.id, chat.type, chat.title) == (GROUP, "supergroup", "News fans")


# ---------------------------------------------------------------- updates
@pytest.mark.asyncio
async def test_get_updates_long_poll_wakes_on_new_update(bot: Bot, api: FakeBotApi) -> None:
    task = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    assert not task.done()
    start = time.monotonic()
    api.private_message(USER, "/start")
    updates = await asyncio.wait_for(task, 2)
    assert time.monotonic() - start < 1
    assert updates[0].message.text == "/start"
    assert updates[0].message.entities[0].type == "bot_command"

    start = time.monotonic()
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=1) == ()
    assert 0.9 <= time.monotonic() - start < 1.8


@pytest.mark.asyncio
async def test_newer_get_updates_terminates_waiting_one(bot: Bot, api: FakeBotApi) -> None:
    waiting = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    async with Bot(api.token, base_url=api.base_url) as second_instance:
        assert await second_instance.get_updates() == ()
    with pytest.raises(Conflict, match="terminated by other getUpdates"):
        await asyncio.wait_for(waiting, 2)


@pytest.mark.asyncio
async def test_offsets_limit_and_allowed_updates(bot: Bot, api: FakeBotApi) -> None:
    for i in range(3):
        api.private_message(USER, f"m{i}")
    first = await bot.get_updates(limit=2)
    assert [u.message.text for u in first] == ["m0", "m1"]
    rest = await bot.get_updates(offset=first[1].update_id + 1)
    assert [u.message.text for u in rest] == ["m2"]
    assert len(api.pending_updates()) == 1
    api.group_message(GROUP, USER, "group")
    only_cb = await bot.get_updates(offset=rest[0].update_id + 1, allowed_updates=["channel_post"])
    assert only_cb == () and api.pending_updates() == []


@pytest.mark.asyncio
async def test_channel_post_and_group_commands(bot: Bot, api: FakeBotApi) -> None:
    post = api.channel_post(CHANNEL, "Breaking: #news @newsbot_test_bot", title="Wire")
    api.edited_channel_post(CHANNEL, post["message_id"], "Breaking (edited)")
    api.group_message(GROUP, USER, "/digest@newsbot_test_bot now", chat_type="group")
    updates = await bot.get_updates()
    posted, edited, command = updates
    assert posted.channel_post.sender_chat.id == CHANNEL and posted.channel_post.from_user is None
    assert posted.channel_post.chat.title == "Wire"
    assert posted.channel_post.entities[0].type == "mention"
    assert edited.edited_channel_post.text == "Breaking (edited)"
    assert command.message.chat.type == "group"
    assert command.message.parse_entities(["bot_command"]).popitem()[1] == (
        "/digest@newsbot_test_bot"
    )
    sent = await bot.send_message(CHANNEL, "from bot")
    assert sent.sender_chat.id == CHANNEL and sent.from_user is None


@pytest.mark.asyncio
async def test_my_chat_member_update_parses(bot: Bot, api: FakeBotApi) -> None:
    api.my_chat_member(GROUP, "supergroup", "administrator", by_user_id=USER)
    api.my_chat_member(USER, "private", "kicked")
    added, blocked = await bot.get_updates()
    assert added.my_chat_member.new_chat_member.status == "administrator"
    assert added.my_chat_member.old_chat_member.status == "left"
    assert added.my_chat_member.from_user.id == USER
    assert blocked.my_chat_member.new_chat_member.status == "kicked"
    with pytest.raises(Forbidden):
        await bot.send_message(USER, "x")


@pytest.mark.asyncio
async def test_commands_and_webhook(bot: Bot, api: FakeBotApi) -> None:
    await bot.set_my_commands([("digest", "Daily digest"), ("help", "Help")])
    await bot.set_my_commands([("hilfe", "Hilfe")], language_code="de")
    assert [c.command for c in await bot.get_my_commands()] == ["digest", "help"]
    assert [c.command for c in await bot.get_my_commands(language_code="de")] == ["hilfe"]
    assert api.commands(language_code="de")[0]["command"] == "hilfe"
    await bot.delete_my_commands(language_code="de")
    assert await bot.get_my_commands(language_code="de") == ()
    with pytest.raises(BadRequest):
        await bot.set_my_commands([("Bad-Name", "x")])

    await bot.set_webhook("https://example.invalid/hook")
    assert (await bot.get_webhook_info()).url == "https://example.invalid/hook"
    with pytest.raises(TelegramError, match="(?i)webhook is active"):
        await bot.get_updates()
    api.private_message(USER, "pending")
    await bot.delete_webhook(drop_pending_updates=True)
    info = await bot.get_webhook_info()
    assert info.url == "" and info.pending_update_count == 0
    assert await bot.log_out() and await bot.close()


# ---------------------------------------------------------------- full Application polling
async def _start(app: Application) -> None:
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(timeout=1, poll_interval=0)


async def _stop(app: Application) -> None:
    assert app.updater is not None
    await app.updater.stop()
    await app.stop()
    await app.shutdown()


@pytest.mark.asyncio
async def test_application_polling_command_and_callback_roundtrip(api: FakeBotApi) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("More", callback_data="more")]])
        await update.effective_message.reply_html("<b>Welcome</b>", reply_markup=keyboard)

    async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        await query.answer("ok")
        await query.edit_message_text(f"You tapped {query.data}")

    app = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(on_button))
    await _start(app)
    try:
        api.private_message(USER, "/start")
        welcome = await asyncio.to_thread(api.wait_for_message, USER, "Welcome", 2.0)
        assert welcome["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "more"
        query_id = api.callback_query(USER, USER, welcome["message_id"], "more")
        await asyncio.to_thread(
            api.wait_for,
            lambda s: s.message(USER, welcome["message_id"])["text"].endswith("more"),
            2.0,
        )
        assert api.callback_answer(query_id)["text"] == "ok"
        assert "reply_markup" not in api.message(USER, welcome["message_id"])
    finally:
        await _stop(app)
    methods = {c.method for c in api.calls()}
    assert {"getMe", "deleteWebhook", "getUpdates", "answerCallbackQuery"} <= methods


@pytest.mark.asyncio
async def test_polling_survives_server_error_on_get_updates(api: FakeBotApi) -> None:
    api.inject_fault("getUpdates", "500")  # PTB's network loop retries after 1 s
    seen: list[str] = []

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(update.effective_message.text)

    app = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
    app.add_handler(CommandHandler("ping", echo))
    await _start(app)
    try:
        api.private_message(USER, "/ping")
        await asyncio.to_thread(api.wait_for, lambda s: seen, 3.0)
    finally:
        await _stop(app)
    assert seen == ["/ping"]
    assert [c.fault for c in api.calls("getUpdates")][:2] == ["500", None]


# ---------------------------------------------------------------- helpers & standalone
def test_wait_for_timeout_dumps_recent_calls(api: FakeBotApi) -> None:
    httpx.post(f"{api.base_url}{api.token}/sendMessage", data={"chat_id": "1", "text": "x"})
    with pytest.raises(AssertionError, match="sendMessage"):
        api.wait_for(lambda s: False, timeout=0.1)


def test_standalone_process_with_control_endpoint() -> None:
    script = Path(__file__).with_name("fake_bot_api.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base_url = line.split()[0].removeprefix("base_url=")
        root = base_url.removesuffix("/bot")
        url = f"{base_url}123456:TEST-TOKEN"
        assert httpx.get(f"{url}/getMe", timeout=2).json()["result"]["id"] == 123456
        sent = httpx.post(f"{url}/sendMessage", data={"chat_id": "55", "text": "auto chat"})
        assert sent.json()["ok"]
        res = httpx.post(
            f"{root}/_control/private_message", content=json.dumps({"user_id": 7, "text": "/start"})
        )
        assert res.json()["result"]["text"] == "/start"
        counts = httpx.post(f"{root}/_control/call_counts").json()["result"]
        assert counts == {"getMe": 1, "sendMessage": 1}
    finally:
        proc.terminate()
        proc.wait(timeout=5)
