"""Hardening: forged webhook requests, forged or stale "More sources" keys, floods that
would stall the bot, and the cost of checking group admins.

The deciding pieces (flood gate, admin cache, quote store, webhook settings) are tested
directly; then the real ``newsbot run`` process against the local Bot API server shows
each attack failing and each legitimate use still working.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from telegram import Update

from bot.answering.models import Quote
from bot.cli import build_parser
from bot.commands.run_cmd import webhook_config
from bot.settings import Settings, SettingsError
from bot.telegram import more_sources
from bot.telegram.flood import sender_id, wants_reply
from bot.telegram.group_admins import GroupAdmins
from bot.telegram.ratelimit import FloodGate
from corpus.store import Store
from tests.bot_process import BotProcess
from tests.fake_bot_api import FakeBotApi

ADMIN = 7001
BOT_NAME = "newsbot_test_bot"
BOT_ID = 123456
GROUP_ANONYMOUS_BOT = 1087968824  # the "user" anonymous group admins write as
BUDGET = Settings().chat_rate_per_minute  # answered updates per group or channel a minute
# Before the flood gate a private question waited ~90 s behind a flooded group; answered
# promptly it takes about a second (model warm, 2 shared cores): allow generous slack.
PROMPT = 10.0


class Clock:
    """A hand-moved monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ flood gate (pure)
def test_a_group_budget_is_shared_by_its_senders_and_drops_cost_nothing() -> None:
    clock = Clock()
    gate = FloodGate(chat_per_minute=3, sender_per_minute=5, clock=clock)
    verdicts = [gate.check(-100, sender, shared_chat=True) for sender in (1, 2, 3, 4, 5)]
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    assert verdicts[3].by_chat and verdicts[3].note  # the first drop of the window: a note
    assert not verdicts[4].note  # later drops: silent
    assert 59 < verdicts[3].wait <= 60
    # Another group and a private chat are not affected.
    assert gate.check(-200, 1, shared_chat=True).allowed
    assert gate.check(6, 6, shared_chat=False).allowed
    # The window slides: drops were not counted, so a minute later the group has its budget
    # again, and the first drop of this new window earns a new note.
    clock.now += 60
    later = [gate.check(-100, 9, shared_chat=True) for _ in range(5)]
    assert [v.allowed for v in later] == [True, True, True, False, False]
    assert later[3].note and not later[4].note


def test_a_sender_budget_holds_across_chats_and_private_chats_have_only_that() -> None:
    clock = Clock()
    gate = FloodGate(chat_per_minute=100, sender_per_minute=2, clock=clock)
    assert gate.check(42, 42, shared_chat=False).allowed
    assert gate.check(-300, 42, shared_chat=True).allowed
    third = gate.check(42, 42, shared_chat=False)
    assert not third.allowed and not third.by_chat and third.note
    clock.now += 61
    assert gate.check(42, 42, shared_chat=False).allowed


def test_the_gate_remembers_a_bounded_number_of_chats_and_senders() -> None:
    gate = FloodGate(chat_per_minute=1, sender_per_minute=1, max_keys=50)
    for n in range(1, 5000):
        gate.check(-n, n, shared_chat=True)
        gate.check(-n, n, shared_chat=True)  # dropped: a note remembered for the chat
    assert len(gate._chats._seen) <= 50 and len(gate._senders._seen) <= 50
    assert len(gate._noted) <= 50


def _update(kind: str, **message: Any) -> Update:
    base = {"message_id": 5, "date": 0, "text": "hello"}
    return Update.de_json({"update_id": 1, kind: {**base, **message}}, None)  # type: ignore[arg-type]


GROUP_CHAT = {"id": -100, "type": "supergroup", "title": "G"}
USER = {"id": 9, "is_bot": False, "first_name": "U"}


@pytest.mark.parametrize(
    ("update", "counted"),
    [
        (_update("message", chat={"id": 9, "type": "private"}, **{"from": USER}), True),
        (_update("message", chat=GROUP_CHAT, **{"from": USER}), False),  # chatter
        (_update("message", chat=GROUP_CHAT, text="/help", **{"from": USER}), True),
        (_update("message", chat=GROUP_CHAT, text=f"/ask@{BOT_NAME} x", **{"from": USER}), True),
        (_update("message", chat=GROUP_CHAT, text="/start@otherbot", **{"from": USER}), False),
        (_update("message", chat=GROUP_CHAT, text=f"hi @{BOT_NAME}", **{"from": USER}), True),
        (
            _update(
                "message",
                chat=GROUP_CHAT,
                reply_to_message={
                    "message_id": 4,
                    "date": 0,
                    "chat": GROUP_CHAT,
                    "text": "an answer",
                    "from": {"id": BOT_ID, "is_bot": True, "first_name": "B"},
                },
                **{"from": USER},
            ),
            True,
        ),
        (_update("edited_message", chat=GROUP_CHAT, **{"from": USER}), False),
        (_update("channel_post", chat={"id": -300, "type": "channel"}), False),  # an article
        (_update("channel_post", chat={"id": -300, "type": "channel"}, text="/ask x"), True),
        (_update("edited_channel_post", chat={"id": -300, "type": "channel"}, text="/x"), False),
    ],
)
def test_only_updates_the_bot_would_answer_are_counted(update: Update, counted: bool) -> None:
    assert wants_reply(update, BOT_NAME, BOT_ID) is counted


def test_anonymous_admins_and_channels_are_their_own_senders() -> None:
    anonymous = _update(
        "message",
        chat=GROUP_CHAT,
        sender_chat=GROUP_CHAT,
        text="/ask x",
        **{"from": {"id": GROUP_ANONYMOUS_BOT, "is_bot": True, "first_name": "Group"}},
    )
    assert sender_id(anonymous) == -100  # not the id every anonymous admin shares
    post = _update("channel_post", chat={"id": -300, "type": "channel"}, text="/ask x")
    assert sender_id(post) == -300
    assert sender_id(_update("message", chat=GROUP_CHAT, **{"from": USER})) == 9


# ------------------------------------------------------------------ admin cache (pure)
class AdminsBot:
    """Answers getChatAdministrators after a pause, counting the calls."""

    def __init__(self, admins: dict[int, list[int]]) -> None:
        self.admins, self.calls = admins, 0
        self.release = asyncio.Event()
        self.release.set()

    async def get_chat_administrators(self, chat_id: int) -> list[SimpleNamespace]:
        self.calls += 1
        await self.release.wait()
        return [
            SimpleNamespace(user=SimpleNamespace(id=uid), status="administrator")
            for uid in self.admins[chat_id]
        ]


async def test_admins_are_asked_once_per_group_and_ttl() -> None:
    clock = Clock()
    cache = GroupAdmins(ttl=600, max_groups=2, clock=clock)
    bot = AdminsBot({-1: [10], -2: [20], -3: [30]})
    bot.release.clear()
    first = [asyncio.create_task(cache.admin_ids(bot, -1)) for _ in range(5)]  # type: ignore[arg-type]
    await asyncio.sleep(0)
    bot.release.set()
    assert {await t for t in first} == {frozenset({10})}
    assert bot.calls == 1  # five concurrent commands, one call
    assert await cache.admin_ids(bot, -1) == frozenset({10})  # type: ignore[arg-type]
    assert bot.calls == 1
    clock.now += 601
    await cache.admin_ids(bot, -1)  # type: ignore[arg-type]
    assert bot.calls == 2  # expired
    cache.forget(-1)
    bot.admins[-1] = [11]
    assert await cache.admin_ids(bot, -1) == frozenset({11})  # type: ignore[arg-type]
    assert bot.calls == 3
    await cache.admin_ids(bot, -2)  # type: ignore[arg-type]
    await cache.admin_ids(bot, -3)  # type: ignore[arg-type]
    assert len(cache._cache) == 2  # bounded: the least recently used group went


async def test_a_change_during_a_fetch_is_not_cached() -> None:
    cache = GroupAdmins(ttl=600)
    bot = AdminsBot({-1: [10]})
    bot.release.clear()
    waiting = asyncio.create_task(cache.admin_ids(bot, -1))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    cache.forget(-1)  # e.g. a chat_member update arrived while Telegram answered
    bot.release.set()
    assert await waiting == frozenset({10})
    await cache.admin_ids(bot, -1)  # type: ignore[arg-type]
    assert bot.calls == 2


# ------------------------------------------------------------------ "more sources" store
def _quotes(n: int) -> tuple[Quote, ...]:
    return tuple(
        Quote(i, 0, 5, f"quote {i}", "T", "Outlet", date(2023, 5, i + 1), "https://x/a")
        for i in range(n)
    ) + (Quote(99, 3, 9, "undated", "T2", "Other", None, None),)


async def test_more_quotes_round_trip_only_in_their_chat(store: Store) -> None:
    quotes = _quotes(2)
    key = await more_sources.remember(store, 555, quotes)
    other = await more_sources.remember(store, 555, quotes)
    assert key != other and len(key) >= 20  # random, not a counter
    assert await more_sources.recall(store, 555, key) == quotes
    assert await more_sources.recall(store, 666, key) is None  # another chat's key
    assert await more_sources.recall(store, 555, "1") is None
    assert await more_sources.recall(store, 555, "x" * 500) is None


async def test_more_quotes_are_bounded_by_age_and_count(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(more_sources, "MAX_ROWS", 5)
    now = datetime(2024, 1, 31, tzinfo=UTC)
    old = await more_sources.remember(store, 1, _quotes(1), now=now - timedelta(days=31))
    assert await more_sources.recall(store, 1, old, now=now) is None  # too old to show
    keys = [
        await more_sources.remember(store, 1, _quotes(1), now=now + timedelta(seconds=n))
        for n in range(7)
    ]
    (count,) = await store.fetchone("SELECT count(*) FROM more_quotes")
    assert count == 5
    assert await store.fetchone("SELECT 1 FROM more_quotes WHERE key = ?", (old,)) is None
    assert await more_sources.recall(store, 1, keys[-1], now=now) is not None


# ------------------------------------------------------------------ webhook settings
def test_webhook_secret_and_path_are_random_and_never_the_bot_id() -> None:
    settings = Settings(telegram_token="123456:ABC")
    one = webhook_config(settings, "https://bot.example.org/", 8443)
    two = webhook_config(settings, "https://bot.example.org", 8443)
    assert one.secret != two.secret and one.url_path != two.url_path
    assert len(one.secret) >= 32 and "123456" not in one.url
    assert one.url == f"https://bot.example.org/{one.url_path}"
    assert one.listen == "127.0.0.1"
    assert one.secret not in repr(one)
    fixed = webhook_config(
        Settings(webhook_secret="s3cret-_X", webhook_path="/tg/hook/", webhook_listen="::1"),
        "https://b.example.org/base",
        8443,
    )
    assert (fixed.secret, fixed.url, fixed.listen) == (
        "s3cret-_X",
        "https://b.example.org/base/tg/hook",
        "::1",
    )
    assert webhook_config(settings, "https://x", 1, listen="0.0.0.0").listen == "0.0.0.0"


@pytest.mark.parametrize(
    "env",
    [
        {"NEWSBOT_WEBHOOK_SECRET": "has space"},
        {"NEWSBOT_WEBHOOK_SECRET": "x" * 257},
        {"NEWSBOT_WEBHOOK_PATH": "a.b(c)"},
    ],
)
def test_bad_webhook_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)


def test_run_webhook_flag_is_not_mistaken_for_a_setting_flag() -> None:
    args = build_parser().parse_args(
        ["--webhook-listen", "::1", "run", "--webhook", "https://x", "--port", "1"]
    )
    assert args.webhook == "https://x" and args.setting_webhook_listen == "::1"
    assert args.listen is None  # then NEWSBOT_WEBHOOK_LISTEN decides


# ------------------------------------------------------------------ the real bot
@pytest.fixture(scope="module")
def bot(api: FakeBotApi, sample_data_dir: Path, tmp_path_factory) -> Iterator[BotProcess]:
    data = tmp_path_factory.mktemp("security-data")
    shutil.copytree(sample_data_dir, data, symlinks=True, dirs_exist_ok=True)
    process = BotProcess(api, data, admin_ids=str(ADMIN))
    process.start()
    try:
        yield process
    finally:
        code = process.stop()
        assert code in (0, -2, -9, 130), process.log_tail()


def last_id(api: FakeBotApi, chat_id: int) -> int:
    return max((m["message_id"] for m in api.bot_messages(chat_id)), default=0)


def more_button(message: dict) -> str:
    buttons = [b for row in message["reply_markup"]["inline_keyboard"] for b in row]
    return next(
        b["callback_data"] for b in buttons if b.get("callback_data", "").startswith("more:")
    )


def ask_privately(api: FakeBotApi, user: int, question: str, contains: str) -> dict:
    before = last_id(api, user)
    api.private_message(user, question)
    return api.wait_for_message(user, contains=contains, after_message_id=before, timeout=60)


def anonymous_admin(api: FakeBotApi, group: int, text: str) -> dict:
    """A group admin writes anonymously: as the group, from GroupAnonymousBot."""
    chat = {"id": group, "type": "supergroup", "title": "Anonymous admins"}
    return api.raw_update(
        {
            "message": {
                "date": int(time.time()),
                "chat": chat,
                "sender_chat": chat,
                "from": {
                    "id": GROUP_ANONYMOUS_BOT,
                    "is_bot": True,
                    "first_name": "Group",
                    "username": "GroupAnonymousBot",
                },
                "text": text,
                "entities": [{"type": "bot_command", "offset": 0, "length": text.find(" ")}],
            }
        }
    )


def test_a_more_sources_key_shows_nothing_in_another_chat(api: FakeBotApi, bot) -> None:
    alice, mallory = 7101, 7102
    reply = ask_privately(api, alice, "who signed with Zolotov?", "Radan")
    data = more_button(reply)
    own = ask_privately(api, mallory, "/help", "Ask me about the news")
    # A modified client sends Alice's key from Mallory's chat.
    forged = api.callback_query(mallory, mallory, own["message_id"], data)
    answer = api.wait_for(lambda a: a.callback_answer(forged), timeout=15)
    assert "too old" in answer.get("text", "")
    assert last_id(api, mallory) == own["message_id"]  # no quotes posted there
    # Alice's own button works.
    before = last_id(api, alice)
    api.callback_query(alice, alice, reply["message_id"], data)
    extra = api.wait_for_message(alice, after_message_id=before, timeout=15)
    assert "—" in extra["text"]
    assert len(data) >= len("more:") + 20  # unguessable, not a counter


def test_an_old_more_sources_button_shows_its_quotes_after_a_restart(
    api: FakeBotApi, bot: BotProcess
) -> None:
    chat = 7103
    reply = ask_privately(api, chat, "who signed with Zolotov?", "Radan")
    data = more_button(reply)
    before = last_id(api, chat)
    api.callback_query(chat, chat, reply["message_id"], data)
    shown = api.wait_for_message(chat, after_message_id=before, timeout=15)

    bot.stop()
    bot.start()
    # A new answer after the restart gets its own key (a restarted counter would reuse ours).
    newer = ask_privately(api, chat, "Which club signed Iranian striker Arash Nouri?", "Nouri")
    before = last_id(api, chat)
    query = api.callback_query(chat, chat, reply["message_id"], data)
    again = api.wait_for_message(chat, after_message_id=before, timeout=15)
    assert again["text"] == shown["text"]
    assert "too old" not in (api.callback_answer(query) or {}).get("text", "")
    assert newer["message_id"] < again["message_id"]


def test_group_admins_are_asked_once_not_per_command(api: FakeBotApi, bot) -> None:
    group, member = -100601, 7201
    api.set_member_status(group, ADMIN, "administrator")
    api.set_member_status(group, member, "member")
    for topic in ("Iran Russia security", "Caspian museum hall", "forest fire prevention"):
        api.group_message(group, ADMIN, f"/follow {topic}")
    api.wait_for(
        lambda a: len([m for m in a.bot_messages(group) if "Following" in m["text"]]) == 3,
        timeout=60,
    )
    before = last_id(api, group)
    api.group_message(group, member, "/follow cheese")
    api.wait_for_message(
        group, contains="Only this group's admins", after_message_id=before, timeout=15
    )

    def calls(method: str) -> list:
        return [c for c in api.calls(method) if c.params.get("chat_id") == group]

    assert len(calls("getChatAdministrators")) == 1
    assert not calls("getChatMember")
    # An anonymous admin writes as the group: an admin, without asking Telegram.
    before = last_id(api, group)
    anonymous_admin(api, group, "/digest 08:00")
    api.wait_for_message(group, contains="Digest on", after_message_id=before, timeout=15)
    assert len(calls("getChatAdministrators")) == 1 and not calls("getChatMember")

    # Telegram says the admin was demoted: the cached list goes, the next command asks again.
    api.set_member_status(group, ADMIN, "member")
    api.raw_update(
        {
            "chat_member": {
                "chat": {"id": group, "type": "supergroup", "title": "Test group"},
                "from": {"id": 7299, "is_bot": False, "first_name": "Owner"},
                "date": int(time.time()),
                "old_chat_member": {
                    "status": "administrator",
                    "user": {"id": ADMIN, "is_bot": False, "first_name": "Ann"},
                    **dict.fromkeys(
                        [
                            "can_be_edited",
                            "is_anonymous",
                            "can_manage_chat",
                            "can_delete_messages",
                            "can_manage_video_chats",
                            "can_restrict_members",
                            "can_promote_members",
                            "can_change_info",
                            "can_invite_users",
                            "can_post_stories",
                            "can_edit_stories",
                            "can_delete_stories",
                        ],
                        False,
                    ),
                },
                "new_chat_member": {
                    "status": "member",
                    "user": {"id": ADMIN, "is_bot": False, "first_name": "Ann"},
                },
            }
        }
    )
    ask_privately(api, 7202, "/help", "Ask me about the news")  # the update is handled by now
    before = last_id(api, group)
    api.group_message(group, ADMIN, "/unfollow 1")
    api.wait_for_message(
        group, contains="Only this group's admins", after_message_id=before, timeout=15
    )
    assert len(calls("getChatAdministrators")) == 2


def test_a_flooded_group_does_not_stall_a_private_question(
    api: FakeBotApi, bot, capsys: pytest.CaptureFixture[str]
) -> None:
    group = -100602
    ask_privately(api, 7301, "who signed with Zolotov?", "Radan")  # the model is warm
    for n in range(60):  # six members, ten /help each: the group's budget is what bites
        api.group_message(group, 7310 + n % 6, "/help")
    asked = time.monotonic()
    api.private_message(7302, "who signed with Zolotov?")
    api.wait_for_message(7302, contains="Radan", timeout=PROMPT)
    latency = time.monotonic() - asked
    # Every /help passed the gate before that question (updates start in order): the group
    # got its budget of help texts and one note; no more, once everything has settled.
    api.wait_for(
        lambda a: (
            len(a.bot_messages(group)) >= BUDGET + 1
            and any("faster than I can read" in m["text"] for m in a.bot_messages(group))
        ),
        timeout=30,
    )
    ask_privately(api, 7303, "/help", "Ask me about the news")
    texts = [m["text"] for m in api.bot_messages(group)]
    assert len([t for t in texts if "Ask me about the news" in t]) == BUDGET, texts
    assert len(texts) == BUDGET + 1, texts
    with capsys.disabled():
        print(f"\nprivate answer during a 60 x /help group flood: {latency:.2f} s")


def test_ask_floods_from_a_channel_and_anonymous_admins_are_limited(api: FakeBotApi, bot) -> None:
    channel, group, other_group = -100603, -100604, -100605
    for _ in range(25):
        api.channel_post(channel, "/ask who signed with Zolotov?")
        anonymous_admin(api, group, "/ask who signed with Zolotov?")
    # Anonymous admins of another group have their own budget (not GroupAnonymousBot's).
    anonymous_admin(api, other_group, "/ask who signed with Zolotov?")
    api.wait_for_message(other_group, contains="Radan", timeout=120)

    def settled(a: FakeBotApi, chat: int) -> bool:
        texts = [m["text"] for m in a.bot_messages(chat)]
        answers = [t for t in texts if "Radan" in t]
        return len(answers) >= BUDGET and any("faster than I can read" in t for t in texts)

    api.wait_for(lambda a: settled(a, channel) and settled(a, group), timeout=120)
    ask_privately(api, 7401, "who signed with Zolotov?", "Radan")
    for chat in (channel, group):
        texts = [m["text"] for m in api.bot_messages(chat)]
        assert len([t for t in texts if "Radan" in t]) == BUDGET, texts
        assert len(texts) == BUDGET + 1, texts


# ------------------------------------------------------------------ webhook
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """The local addresses listening on TCP ``port`` (Linux /proc/net/tcp)."""
    found = set()
    for name, size in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(name).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                if size == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def post(url: str, update: dict, secret: str | None = None) -> int:
    """POST an update as Telegram would (retrying while the server comes up); the status."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.post(url, json=update, headers=headers, timeout=5).status_code
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the webhook server never came up"
            time.sleep(0.2)


def test_webhook_refuses_forged_updates(sample_data_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(sample_data_dir, data, symlinks=True)
    port = free_port()
    with FakeBotApi() as api:
        bot = BotProcess(api, data, admin_ids=str(ADMIN))
        bot.start("--webhook", f"http://127.0.0.1:{port}", "--port", str(port))
        try:
            hook = api.calls("setWebhook")[-1].params
            secret, url, bot_id = hook.get("secret_token"), hook["url"], api.token.split(":")[0]
            assert secret and len(secret) >= 32
            assert url.startswith(f"http://127.0.0.1:{port}/") and bot_id not in url
            forged = {
                "update_id": 900001,
                "message": {
                    "message_id": 1,
                    "date": int(time.time()),
                    "chat": {"id": ADMIN, "type": "private", "first_name": "Ann"},
                    "from": {"id": ADMIN, "is_bot": False, "first_name": "Ann"},
                    "text": "/delete 1",
                    "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
                },
            }
            assert post(url, forged) == 403  # no secret header
            assert post(url, {**forged, "update_id": 900002}, secret="guess") == 403
            old_url = f"http://127.0.0.1:{port}/{bot_id}"  # the path the bot id gave away
            assert post(old_url, {**forged, "update_id": 900003}) == 404
            assert listening_addresses(port) == {"127.0.0.1"}  # loopback unless told

            api.private_message(ADMIN, "/stats")
            assert post(url, api.pending_updates()[-1], secret=secret) == 200
            stats = api.wait_for_message(ADMIN, contains="articles", timeout=30)
            assert "13" in stats["text"]
            texts = [m["text"] for m in api.bot_messages(ADMIN)]
            assert texts == [stats["text"]], texts  # nothing forged was answered or done
            with sqlite3.connect(data / "newsbot.db") as db:
                assert db.execute("SELECT count(*) FROM articles WHERE id = 1").fetchone() == (1,)
        finally:
            code = bot.stop()
        assert code in (0, -2, -9, 130), bot.log_tail()
