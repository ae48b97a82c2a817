"""The base of the update generator: what was sent (``Injected``), and ``UpdateBuilder``,
which holds the fuzz's chats and memory and builds, checks, sends and records raw updates.

The kinds of updates are added by subclasses: ``messages.MessageUpdates`` (messages and
commands), ``callbacks.CallbackUpdates`` (callbacks, member changes, other update types) and
``updates.UpdateFuzzer`` (the weighted mix).
"""

from __future__ import annotations

import copy
import json
import random
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from telegram import Update

from benchmarks.fuzzing.server import FuzzBotApi
from benchmarks.fuzzing.texts import TextFuzz
from benchmarks.fuzzing.world import (
    ADMIN_CHAT,
    ADMIN_IDS,
    CHANNELS,
    GROUPS,
    HOT,
    HOT_SHARE,
    JSON,
    USERS,
    bot_commands,
    has_lone_surrogate,
    utf16_len,
)
from tests import fake_bot_api_html as tg_html


@dataclass
class Injected:
    """What the fuzzer sent: per update its kind, time and a summary, for the report."""

    kinds: Counter = field(default_factory=Counter)
    count: int = 0
    rejected_by_ptb: int = 0  # generated updates PTB could not parse: not sent
    control_errors: Counter = field(default_factory=Counter)
    summaries: dict[int, str] = field(default_factory=dict)  # update_id -> trimmed JSON
    by_message: dict[tuple[int, int], tuple[int, float]] = field(default_factory=dict)
    last_update_id: int = 0


def summarize(update: JSON, max_str: int = 160) -> str:
    """The update as one JSON line with long strings shortened (a reproduction)."""

    def trim(value: Any) -> Any:
        if isinstance(value, str) and len(value) > max_str:
            return f"{value[:max_str]}…(+{len(value) - max_str} chars)"
        if isinstance(value, dict):
            return {k: trim(v) for k, v in value.items()}
        if isinstance(value, list):
            return [trim(v) for v in value[:20]] + (["…"] if len(value) > 20 else [])
        return value

    return json.dumps(trim(update), ensure_ascii=True)


class UpdateBuilder:
    """Chats, users and memory of the fuzz, and the building blocks every kind of update uses:
    senders, raw messages, entities, junk fields; sending through the server and recording."""

    def __init__(self, api: FuzzBotApi, rng: random.Random, ports: list[int]) -> None:
        self.api = api
        self.rng = rng
        self.ports = ports
        self.texts = TextFuzz(rng)
        self.commands = bot_commands()
        self.out = Injected()
        self.groups: list[JSON] = []
        self.channels: list[JSON] = []
        for i in range(GROUPS):
            kind = "group" if i % 4 == 0 else "supergroup"
            chat_id = -(4_000_000 + i) if kind == "group" else -(1_002_000_000_000 + i)
            self.groups.append({"id": chat_id, "type": kind, "title": self._title()})
        for i in range(CHANNELS):
            chat = {"id": -(1_003_000_000_000 + i), "type": "channel", "title": self._title()}
            if i % 2:
                chat["username"] = f"fuzzchan{i}"
            self.channels.append(chat)
        # Each group has two admins of its own (the server says so): they may /follow.
        self.group_admins = {g["id"]: rng.sample(list(USERS), 2) for g in self.groups}
        for chat_id, admins in self.group_admins.items():
            for user_id in admins:
                api.set_member_status(chat_id, user_id, "administrator")
        api.set_member_status(ADMIN_CHAT, api.bot_id, "administrator")  # creates the chat
        self.user_messages: deque[tuple[int, int, str]] = deque(maxlen=400)  # chat, id, kind
        self.bot_messages: deque[tuple[int, int]] = deque(maxlen=400)
        self.more_keys: deque[str] = deque(maxlen=200)
        self._calls_seen = 0
        self._refreshed = -1000  # out.count at the last refresh_bot_messages()

    # -------------------------------------------------------------- building blocks
    def _title(self) -> str:
        return self.texts.short(128)

    def _user(self, user_id: int | None = None) -> JSON:
        user_id = user_id if user_id is not None else self.pick(USERS)
        user: JSON = {"id": user_id, "is_bot": False, "first_name": self.texts.short(64)}
        if self.rng.random() < 0.3:
            user["username"] = f"user{user_id}"
        if self.rng.random() < 0.5:
            user["language_code"] = self.rng.choice(["en", "ru", "fa", "ar", "zz", "", "xx-YY"])
        return user

    def pick(self, items: Any) -> Any:
        """A random item, the first ``HOT`` ones much likelier: state piles up in busy chats
        (50 subscriptions, long /following and /feeds lists, the per-user rate limit)."""
        if self.rng.random() < HOT_SHARE:
            return items[self.rng.randrange(HOT)]
        return self.rng.choice(items)

    def _sender_id(self, admin_share: float = 0.12) -> int:
        if self.rng.random() < admin_share:
            return self.rng.choice(ADMIN_IDS)
        return self.pick(USERS)

    def _private_chat(self, user: JSON) -> JSON:
        return {"id": user["id"], "type": "private", "first_name": user["first_name"]}

    def _entities(self, text: str, wrong: bool) -> list[JSON]:
        """What Telegram would detect, or (``wrong``) entities with broken offsets and types."""
        try:
            entities = tg_html.auto_entities(text)
        except UnicodeEncodeError:  # lone surrogates: only a leading command, like Telegram
            match = re.match(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,32})?", text)
            entities = (
                [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group(0))}]
                if match
                else []
            )
        if not wrong:
            return entities
        rng, n = self.rng, utf16_len(text)
        bad: list[JSON] = []
        for ent in entities:
            if rng.random() < 0.5:
                ent = {**ent, "offset": max(0, ent["offset"] + rng.randint(-3, 3))}
            if rng.random() < 0.5:
                ent = {**ent, "length": max(1, ent["length"] + rng.randint(-5, 50))}
            bad.append(ent)
        for _ in range(rng.randint(1, 6)):
            kind = rng.choice(
                [
                    "bot_command",
                    "mention",
                    "url",
                    "bold",
                    "text_link",
                    "future_entity",
                    "custom_emoji",
                    "pre",
                    "hashtag",
                    "blockquote",
                ]
            )
            ent = {"type": kind, "offset": rng.randint(0, n + 20), "length": rng.randint(1, n + 30)}
            if kind == "text_link":
                ent["url"] = "http://127.0.0.1:1/"
            if kind == "custom_emoji":
                ent["custom_emoji_id"] = "1"
            bad.append(ent)
        if rng.random() < 0.05:
            bad.extend({"type": "bold", "offset": i, "length": 1} for i in range(min(n, 3000)))
        return bad

    def _unknown_fields(self, obj: JSON) -> None:
        """Fields Telegram might add, at the message, chat and sender level."""
        if self.rng.random() < 0.5:
            obj[self.rng.choice(["future_field", "reactions_v9", "x_hologram"])] = self._junk()
        if self.rng.random() < 0.3 and isinstance(obj.get("chat"), dict):
            obj["chat"]["future_chat_flag"] = self._junk()
        if self.rng.random() < 0.3 and isinstance(obj.get("from"), dict):
            obj["from"]["has_future_feature"] = True

    def _junk(self, depth: int = 0) -> Any:
        """A random JSON value."""
        r = self.rng.random()
        if depth < 3 and r < 0.25:
            return {
                self.texts.short(12): self._junk(depth + 1) for _ in range(self.rng.randint(0, 4))
            }
        if depth < 3 and r < 0.45:
            return [self._junk(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return self.rng.choice(
            [None, True, False, 0, -1, 2**63, 1.5, "", self.texts.short(40, allow_surrogates=True)]
        )

    def _message(
        self,
        chat: JSON,
        text: str,
        sender: JSON | None,
        *,
        sender_chat: JSON | None = None,
        wrong_entities: bool = False,
        reply_to: JSON | None = None,
        caption: bool = False,
    ) -> JSON:
        """A raw ``Message`` object (the server assigns ``message_id``)."""
        msg: JSON = {"date": int(time.time()), "chat": copy.deepcopy(chat)}
        if sender is not None:
            msg["from"] = sender
        if sender_chat is not None:
            msg["sender_chat"] = copy.deepcopy(sender_chat)
        key = "caption" if caption else "text"
        msg[key] = text
        entities = self._entities(text, wrong_entities)
        if entities:
            msg["caption_entities" if caption else "entities"] = entities
        if caption:
            msg["photo"] = [{"file_id": "AgAD", "file_unique_id": "AQAD", "width": 1, "height": 1}]
        if reply_to is not None:
            msg["reply_to_message"] = reply_to
        return msg

    # -------------------------------------------------------------- sending
    def _send_raw(self, update: JSON, kind: str) -> bool:
        """Check that PTB can parse ``update``, then enqueue it verbatim."""
        probe = {**copy.deepcopy(update), "update_id": 1}
        for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
            if isinstance(probe.get(key), dict):
                probe[key].setdefault("message_id", 1)  # the server assigns the real one
        try:
            Update.de_json(probe, None)
        except Exception:  # Telegram would never send it: a generator bug, not a finding
            self.out.rejected_by_ptb += 1
            return False
        sent = self.api.raw_update(update)
        self._record(sent, kind)
        return True

    def _record(self, update: JSON, kind: str) -> None:
        out = self.out
        out.count += 1
        out.kinds[kind] += 1
        update_id = int(update["update_id"])
        out.last_update_id = max(out.last_update_id, update_id)
        out.summaries[update_id] = summarize(update)
        now = time.time()
        for key in ("message", "edited_message", "channel_post", "edited_channel_post"):
            msg = update.get(key)
            if isinstance(msg, dict) and "message_id" in msg:
                chat_id = int(msg["chat"]["id"])
                out.by_message[(chat_id, int(msg["message_id"]))] = (update_id, now)
                if key in ("message", "channel_post"):
                    self.user_messages.append((chat_id, int(msg["message_id"]), key))
        query = update.get("callback_query")
        if isinstance(query, dict) and isinstance(query.get("message"), dict):
            msg = query["message"]
            out.by_message[(int(msg["chat"]["id"]), int(msg["message_id"]))] = (update_id, now)

    def _control(self, kind: str, func: Callable[[], JSON | str]) -> bool:
        """Call a control method of the server; record the update it enqueued."""
        self.api.last_enqueued = None
        try:
            func()
        except Exception as exc:  # e.g. the bot deleted the message meanwhile
            self.out.control_errors[f"{kind}: {type(exc).__name__}"] += 1
            return False
        # The control methods return the message, not the update: this process is the only
        # one enqueueing, so the server's last enqueued update is this one.
        update = self.api.last_enqueued
        if update is not None:
            self._record(update, kind)
        return update is not None

    def _text_message(
        self, kind: str, chat: JSON, text: str, sender: JSON | None, *, raw: bool = False, **kw: Any
    ) -> bool:
        """Through the control API when it can carry the message, else as a raw update."""
        plain = not raw and not kw and not has_lone_surrogate(text) and self.rng.random() < 0.6
        if plain and chat["type"] == "private" and sender:
            return self._control(
                kind,
                lambda: self.api.private_message(sender["id"], text, sender["first_name"]),
            )
        if plain and chat["type"] in ("group", "supergroup") and sender:
            return self._control(
                kind,
                lambda: self.api.group_message(
                    chat["id"],
                    sender["id"],
                    text,
                    title=chat["title"],
                    chat_type=chat["type"],
                    first_name=sender["first_name"],
                ),
            )
        if plain and chat["type"] == "channel":
            return self._control(
                kind,
                lambda: self.api.channel_post(
                    chat["id"], text, chat["title"], username=chat.get("username")
                ),
            )
        key = "channel_post" if chat["type"] == "channel" else "message"
        if chat["type"] == "channel":
            kw.setdefault("sender_chat", chat)  # Telegram always names the channel
        msg = self._message(chat, text, sender, **kw)
        if self.rng.random() < 0.15:
            self._unknown_fields(msg)
        return self._send_raw({key: msg}, kind)

    def refresh_bot_messages(self) -> None:
        """Learn the bot's new messages (and their ``more:`` keys) from the recorded calls."""
        if self.out.count - self._refreshed < 20:  # copying the call list costs
            return
        self._refreshed = self.out.count
        calls = self.api.calls()
        for call in calls[self._calls_seen :]:
            if call.method != "sendMessage" or call.status != 200:
                continue
            msg = call.response
            if not isinstance(msg, dict):
                continue
            self.bot_messages.append((int(msg["chat"]["id"]), int(msg["message_id"])))
            for row in (msg.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    data = button.get("callback_data")
                    if isinstance(data, str) and data.startswith("more:"):
                        self.more_keys.append(data)
        self._calls_seen = len(calls)
