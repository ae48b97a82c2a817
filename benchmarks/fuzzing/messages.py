"""Message updates: commands with fitting (or junk) arguments, private texts and commands,
group messages, mentions and replies, channel posts and commands, edits, and messages of odd
shapes."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.fuzzing.builders import UpdateBuilder
from benchmarks.fuzzing.texts import LONE_SURROGATES
from benchmarks.fuzzing.world import (
    ADMIN_IDS,
    ANON_ADMIN,
    BOT_USERNAME,
    CHANNELS,
    COMMAND_WEIGHTS,
    JSON,
    TELEGRAM_SERVICE,
    has_lone_surrogate,
)


class MessageUpdates(UpdateBuilder):
    """Messages and commands in private chats, groups and channels, and their edits."""

    # -------------------------------------------------------------- commands
    def _command_text(self, name: str | None = None, chat_kind: str = "private") -> str:
        """``/name args`` with arguments that fit the command, or junk."""
        rng = self.rng
        if name is None:
            weights = [COMMAND_WEIGHTS.get(c, 2) for c in self.commands]
            name = rng.choices(self.commands, weights=weights)[0]
            if rng.random() < 0.04:
                name = rng.choice(["foo", "ASK", "a" * 40, "ask_", "start" + "x" * 30, "", "стоп"])
        head = f"/{name}"
        r = rng.random()
        if chat_kind != "private" and r < 0.3:
            head += f"@{BOT_USERNAME}"
        elif r < 0.35:
            head += rng.choice(["@other_bot", "@", f"@{BOT_USERNAME.upper()}", "@@x"])
        args = self._args(name)
        sep = rng.choice([" ", " ", " ", "\n", "\u00a0", "  ", "\t"])
        return head + (sep + args if args else "")

    def _id_arg(self) -> str:
        return self.rng.choice(
            [
                str(self.rng.randint(14, 80)),
                str(self.rng.randint(0, 5)),
                "-1",
                "99999999999999999999999",
                "١٢",
                "²",
                "0x10",
                "#7",
                "7.5",
                "",
                "1e3",
                "٣",
                "৩",
            ]
        )

    def _url(self) -> str:
        """A URL the bot may try to fetch: only 127.0.0.1/[::1] closed ports, or junk."""
        rng = self.rng
        port = rng.choice(self.ports)
        path = rng.choice(["/", "/feed.xml", "/news/a.html", "/" + "a" * 3000, "/%00", "/?q=&&"])
        if rng.random() < 0.2:  # long URLs make long /feeds lists
            path = "/" + "a" * rng.randint(500, 3000)
        return rng.choice(
            [
                f"http://127.0.0.1:{port}{path}",
                f"https://127.0.0.1:{port}{path}",
                f"http://[::1]:{port}{path}",
                f"http://127.0.0.1:{port}/{self.texts.short(40)}",
                f"http://user:pw@127.0.0.1:{port}/",
                "http://127.0.0.1:9/secret",
                "http://127.0.0.1:1/",
                "http://[::ffff:127.0.0.1]:9/",
                "file:///etc/passwd",
                "javascript:alert(1)",
                "ftp://127.0.0.1:21/",
                "http://",
                "http://:80/",
                "http://127.0.0.1:99999/",
                "not a url",
                # No "://": refused before any lookup, so no DNS query leaves the machine.
                self.texts.short(30).replace("://", ":/"),
            ]
        )

    def _args(self, name: str) -> str:
        rng, texts = self.rng, self.texts
        if name in ("ingest", "addfeed"):  # fetched: only loopback URLs (see ``_url``)
            url = self._url()
            if name == "addfeed" and rng.random() < 0.5:
                url += " " + rng.choice(["5", "1441", "4", "²", "60", "junk", "5 6"])
            return url
        if rng.random() < 0.08:
            return texts.text(allow_surrogates=True)
        if name == "ask":
            return texts.text(allow_surrogates=True) if rng.random() < 0.4 else texts.question()
        if name == "follow":
            return rng.choice(
                [
                    texts.question(),
                    " ".join(rng.choices(texts.words, k=rng.randint(1, 6))),
                    f"feed {self._id_arg()}",
                    f"feed {rng.randint(1, 6)}",
                    "feed",
                    texts.short(300),
                    texts.text(),
                ]
            )
        if name in ("unfollow", "delete", "removefeed"):
            return self._id_arg()
        if name == "digest":
            now = datetime.now(UTC)
            soon = (now - timedelta(minutes=rng.randint(0, 3))).strftime("%H:%M")
            return rng.choice(
                [
                    "08:00",
                    "off",
                    "OFF",
                    soon,
                    soon,
                    "25:00",
                    "8:5",
                    "24:00",
                    "٠٨:٠٠",
                    "０８:００",
                    "23:59",
                    "-1:00",
                    "",
                    "8:00pm",
                    texts.short(20),
                ]
            )
        if name in ("addchannel", "approvechannel", "removechannel"):
            return rng.choice(
                [
                    str(self.pick(self.channels)["id"]),
                    str(self.pick(self.groups)["id"]),
                    "-100",
                    "-99999999999999999999",
                    "@fuzzchan1",
                    texts.short(20),
                    "",
                ]
            )
        return texts.short(30) if rng.random() < 0.2 else ""

    # -------------------------------------------------------------- actions
    def private_text(self) -> bool:
        user = self._user(self._sender_id())
        return self._text_message("private text", self._private_chat(user), self.texts.text(), user)

    def private_command(self) -> bool:
        user = self._user(self._sender_id(0.3))
        text = self._command_text()
        return self._text_message("private command", self._private_chat(user), text, user)

    def _group_sender(self, group: JSON) -> tuple[JSON | None, JSON | None]:
        """(from, sender_chat): users, bot admins, group admins, anonymous admins, channels."""
        r = self.rng.random()
        if r < 0.10:
            return dict(ANON_ADMIN), group
        if r < 0.14:
            return dict(TELEGRAM_SERVICE), self.pick(self.channels)
        if r < 0.34:
            return self._user(self.rng.choice(self.group_admins[group["id"]])), None
        if r < 0.42:
            return self._user(self.rng.choice(ADMIN_IDS)), None
        if r < 0.45:
            return {
                "id": self.rng.randint(10**9, 2 * 10**9),
                "is_bot": True,
                "first_name": "bot",
            }, None
        return self._user(), None

    def _group_message(self, kind: str, text: str, group: JSON | None = None, **kw: Any) -> bool:
        group = group or self.pick(self.groups)
        sender, sender_chat = self._group_sender(group)
        if sender_chat is not None:
            kw["sender_chat"] = sender_chat
        return self._text_message(kind, group, text, sender, **kw)

    def group_command(self) -> bool:
        return self._group_message("group command", self._command_text(chat_kind="group"))

    def group_mention(self) -> bool:
        text = self.texts.text()
        where = self.rng.choice(["start", "end", "middle", "upper"])
        mention = f"@{BOT_USERNAME}"
        if where == "start":
            text = f"{mention} {text}"
        elif where == "end":
            text = f"{text} {mention}"
        elif where == "middle":
            cut = self.rng.randint(0, len(text))
            text = f"{text[:cut]} {mention} {text[cut:]}"
        else:
            text = f"{mention.upper()} {text}"
        return self._group_message("group mention", text)

    def group_reply_to_bot(self) -> bool:
        """A reply to one of the bot's messages in a group (or a forged reply to it)."""
        self.refresh_bot_messages()
        candidates = [(c, m) for c, m in self.bot_messages if c < 0]
        group = self.pick(self.groups)
        text = self.texts.text()
        if candidates and self.rng.random() < 0.7:
            chat_id, message_id = self.rng.choice(candidates)
            match = [g for g in self.groups if g["id"] == chat_id]
            if match:
                original = self.api.message(chat_id, message_id)
                if original is not None:
                    original.pop("reply_to_message", None)
                    return self._group_message(
                        "group reply", text, match[0], reply_to=original, raw=True
                    )
        # Forged: "a reply to the bot" in a group where the bot never wrote that message.
        forged = {
            "message_id": 10**6 + self.rng.randint(0, 1000),
            "date": int(time.time()),
            "chat": copy.deepcopy(group),
            "from": self.api.bot_user,
            "text": self.texts.short(60),
        }
        return self._group_message("group reply", text, group, reply_to=forged, raw=True)

    def group_chatter(self) -> bool:
        return self._group_message("group chatter", self.texts.text())

    def channel_command(self) -> bool:
        channel = self.pick(self.channels)
        text = self._command_text(
            self.rng.choice(
                [
                    "ask",
                    "addchannel",
                    "removechannel",
                    "follow",
                    "follow",
                    "following",
                    "unfollow",
                    "digest",
                    "about",
                    "start",
                    "stats",
                    None,
                ]
            ),
            "channel",
        )
        if text.startswith("/addchannel") and self.rng.random() < 0.7:
            text = "/addchannel"  # most channels that try it become sources
        return self._channel_post("channel command", channel, text)

    def _channel_post(self, kind: str, channel: JSON, text: str) -> bool:
        r = self.rng.random()
        if r < 0.1:  # a photo with a caption
            msg = self._message(channel, text, None, sender_chat=channel, caption=True)
            return self._send_raw({"channel_post": msg}, kind)
        if r < 0.15:  # a forged "from" in a channel post: it must give no rights
            msg = self._message(
                channel, text, self._user(self.rng.choice(ADMIN_IDS)), sender_chat=channel
            )
            msg["author_signature"] = self.texts.short(30)
            return self._send_raw({"channel_post": msg}, kind)
        if r < 0.3:  # as a raw update, sometimes with wrong entities
            return self._text_message(
                kind, channel, text, None, wrong_entities=self.rng.random() < 0.3
            )
        return self._text_message(kind, channel, text, None)

    def channel_post(self) -> bool:
        channel = self.pick(self.channels[: CHANNELS // 2])  # the likelier sources
        r = self.rng.random()
        if r < 0.35:
            text = self.texts.quotable()
        else:
            text = self.texts.text(min_chars=40) if r < 0.85 else self.texts.text()
        return self._channel_post("channel post", channel, text)

    def edited_message(self) -> bool:
        mine = [m for m in self.user_messages if m[2] == "message"]
        if not mine:
            return self.private_text()
        chat_id, message_id, _ = self.rng.choice(mine)
        original = self.api.message(chat_id, message_id)
        if original is None:
            return False
        new_text = self._command_text() if self.rng.random() < 0.4 else self.texts.text()
        if not has_lone_surrogate(new_text) and self.rng.random() < 0.6:
            return self._control(
                "edited message", lambda: self.api.edited_message(chat_id, message_id, new_text)
            )
        original.update(text=new_text, edit_date=int(time.time()))
        original.pop("entities", None)
        if entities := self._entities(new_text, self.rng.random() < 0.3):
            original["entities"] = entities
        return self._send_raw({"edited_message": original}, "edited message")

    def edited_channel_post(self) -> bool:
        posts = [m for m in self.user_messages if m[2] == "channel_post"]
        if not posts:
            return self.channel_post()
        chat_id, message_id, _ = self.rng.choice(posts)
        original = self.api.message(chat_id, message_id)
        if original is None:
            return False
        new_text = self.texts.text(min_chars=30)
        if not has_lone_surrogate(new_text) and self.rng.random() < 0.6:
            return self._control(
                "edited channel post",
                lambda: self.api.edited_channel_post(chat_id, message_id, new_text),
            )
        key = "caption" if "caption" in original else "text"
        original.update({key: new_text, "edit_date": int(time.time())})
        original.pop("entities", None)
        original.pop("caption_entities", None)
        return self._send_raw({"edited_channel_post": original}, "edited channel post")

    def weird_message(self) -> bool:
        """Messages of odd shapes: wrong entities, no text, unknown content, odd senders."""
        rng = self.rng
        r = rng.random()
        user = self._user(self._sender_id())
        chat = self._private_chat(user) if rng.random() < 0.5 else self.pick(self.groups)
        if r < 0.4:  # wrong entities (offsets past the end, inside surrogate pairs, unknown)
            text = (
                self._command_text(chat_kind=chat["type"])
                if rng.random() < 0.5
                else (f"@{BOT_USERNAME} " + self.texts.text())
            )
            msg = self._message(chat, text, user, wrong_entities=True)
        elif r < 0.6:  # no text: unknown content, or a sticker-like service message
            msg = {"date": int(time.time()), "chat": chat, "from": user}
            msg[rng.choice(["future_content", "hologram", "giveaway_v9"])] = self._junk()
        elif r < 0.75:  # a message from a chat (anonymous admin) in a private chat: nonsense
            msg = self._message(
                chat, self._command_text(), None, sender_chat=self.pick(self.channels)
            )
        elif r < 0.9:  # the whole text is surrogates and combining marks
            text = "".join(
                rng.choice(LONE_SURROGATES + ["\u0301", "👍"]) for _ in range(rng.randint(1, 400))
            )
            msg = self._message(chat, "/ask " + text if rng.random() < 0.5 else text, user)
        else:  # an odd chat: a type Telegram might add, or a private chat with a group id
            odd = {
                "id": chat["id"],
                "type": rng.choice(["future_chat_type", "sender"]),
                "title": "x",
            }
            msg = self._message(odd, self._command_text(), user)
        self._unknown_fields(msg)
        return self._send_raw({"message": msg}, "weird message")
