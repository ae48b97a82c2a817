"""Updates that are not plain messages: callback queries (forged data, inaccessible and
inline messages), ``my_chat_member``/``chat_member`` changes, update types the bot did not ask
for, and types Telegram might add."""

from __future__ import annotations

import copy
import re
import time

from benchmarks.fuzzing.messages import MessageUpdates
from benchmarks.fuzzing.world import ADMIN_IDS, JSON, UNKNOWN_KINDS, USERS


class CallbackUpdates(MessageUpdates):
    """Callback queries, member changes, unknown and unsubscribed update types."""

    def _callback_data(self) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.25 and self.more_keys:
            return rng.choice(self.more_keys)  # a real key, often another chat's
        if r < 0.35 and self.more_keys:  # a real key with its numbers shifted: a neighbour's
            return re.sub(
                r"\d+",
                lambda m: str(max(0, int(m.group()) + rng.randint(-3, 3))),
                rng.choice(self.more_keys),
            )
        if r < 0.6:
            key = rng.choice(
                [
                    str(rng.randint(0, 5000)),
                    "-1",
                    "",
                    "0",
                    "999999999999999999999",
                    "1:2",
                    "abc",
                    "..",
                    "%s",
                    self.texts.short(20),
                ]
            )
            return f"more:{key}"
        return rng.choice(
            [
                "",
                "more",
                "MORE:1",
                "more:",
                "x" * 200,
                self.texts.short(64),
                "follow:1",
                "delete:1",
                ":",
                "more:\x00",
            ]
        )

    def callback_forged(self) -> bool:
        """A button press with forged data on a real bot message, by anyone."""
        self.refresh_bot_messages()
        if not self.bot_messages:
            return self.private_command()
        chat_id, message_id = self.rng.choice(self.bot_messages)
        user_id = chat_id if chat_id > 0 and self.rng.random() < 0.7 else self._sender_id()
        data = self._callback_data()
        return self._control(
            "callback forged",
            lambda: self.api.callback_query(chat_id, user_id, message_id, data),
        )

    def callback_raw(self) -> bool:
        """Callback queries on inaccessible or inline messages, or without data."""
        rng = self.rng
        user = self._user(self._sender_id())
        query: JSON = {
            "id": f"fz{rng.randint(0, 10**12)}",
            "from": user,
            "chat_instance": str(rng.randint(-(10**9), 10**9)),
        }
        r = rng.random()
        chat = self._private_chat(user) if rng.random() < 0.5 else self.pick(self.groups)
        if r < 0.4:
            query["message"] = {"message_id": rng.randint(1, 10**6), "date": 0, "chat": chat}
        elif r < 0.7:
            query["inline_message_id"] = self.texts.short(20)
        else:
            self.refresh_bot_messages()
            if self.bot_messages:
                chat_id, message_id = rng.choice(self.bot_messages)
                message = self.api.message(chat_id, message_id)
                if message is not None:
                    query["message"] = message
            if "message" not in query:
                query["inline_message_id"] = "x"
        if rng.random() < 0.8:
            query["data"] = self._callback_data()
        elif rng.random() < 0.5:
            query["game_short_name"] = self.texts.short(20)
        return self._send_raw({"callback_query": query}, "callback raw")

    def member_update(self) -> bool:
        """The bot is added, promoted, kicked or blocked; or (raw) a member changes."""
        rng = self.rng
        if rng.random() < 0.75:
            if rng.random() < 0.6:
                chat = rng.choice(self.groups + self.channels)
                chat_id, chat_type, title = chat["id"], chat["type"], chat["title"]
            else:
                chat_id, chat_type, title = rng.choice(USERS), "private", None
            # Mostly the bot is (re-)added: a chat that kicked it gets 403s until then.
            status = rng.choices(
                ["member", "administrator", "kicked", "left", "restricted"], [5, 4, 1, 1, 1]
            )[0]
            if chat_type == "channel" and status in ("member", "restricted"):
                status = "administrator"
            if chat_type == "private" and status in ("administrator", "restricted"):
                status = "member"
            by = rng.choice(list(USERS) + list(ADMIN_IDS))
            return self._control(
                "my_chat_member",
                lambda: self.api.my_chat_member(chat_id, chat_type, status, by, title=title),
            )
        group, user = self.pick(self.groups), self._user(self._sender_id())
        old, new = rng.sample(["member", "left", "kicked", "administrator", "creator"], 2)
        event = {
            "chat": copy.deepcopy(group),
            "from": self._user(),
            "date": int(time.time()),
            "old_chat_member": self._chat_member(old, user),
            "new_chat_member": self._chat_member(new, user),
        }
        return self._send_raw({"chat_member": event}, "chat_member")

    @staticmethod
    def _chat_member(status: str, user: JSON) -> JSON:
        """A ``ChatMember`` of ``status`` with the fields Telegram sends for it."""
        member: JSON = {"status": status, "user": user}
        if status == "kicked":
            member["until_date"] = 0
        elif status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            rights = (
                "can_be_edited is_anonymous can_manage_chat can_delete_messages"
                " can_manage_video_chats can_restrict_members can_promote_members can_change_info"
                " can_invite_users can_post_stories can_edit_stories can_delete_stories"
            ).split()
            member.update(dict.fromkeys(rights, False), can_manage_chat=True)
        return member

    def unknown_update(self) -> bool:
        """An update type Telegram might add (or nothing at all besides ``update_id``)."""
        if self.rng.random() < 0.1:
            return self._send_raw({}, "unknown type")
        update = {self.rng.choice(UNKNOWN_KINDS): self._junk()}
        if self.rng.random() < 0.3:  # a known kind beside an unknown one
            user = self._user()
            update["message"] = self._message(self._private_chat(user), self.texts.text(), user)
        return self._send_raw(update, "unknown type")

    def unsubscribed_update(self) -> bool:
        """Known update types the bot did not ask for, in shapes Telegram sends."""
        rng, user = self.rng, self._user()
        group, now = self.pick(self.groups), int(time.time())
        options: list[JSON] = [
            {
                "inline_query": {
                    "id": "1",
                    "from": user,
                    "query": self.texts.short(60),
                    "offset": "",
                }
            },
            {"chosen_inline_result": {"result_id": "r", "from": user, "query": "q"}},
            {
                "poll": {
                    "id": "p",
                    "question": self.texts.short(60),
                    "options": [{"text": "a", "voter_count": 1, "persistent_id": "o1"}],
                    "total_voter_count": 1,
                    "is_closed": False,
                    "is_anonymous": True,
                    "type": "regular",
                    "allows_multiple_answers": False,
                    "allows_revoting": False,
                    "members_only": False,
                }
            },
            {
                "poll_answer": {
                    "poll_id": "p",
                    "option_ids": [0],
                    "option_persistent_ids": ["o1"],
                    "user": user,
                }
            },
            {
                "chat_join_request": {
                    "chat": group,
                    "from": user,
                    "user_chat_id": user["id"],
                    "date": now,
                }
            },
            {
                "message_reaction": {
                    "chat": group,
                    "message_id": 1,
                    "date": now,
                    "user": user,
                    "old_reaction": [],
                    "new_reaction": [{"type": "emoji", "emoji": "👍"}],
                }
            },
            {
                "message_reaction_count": {
                    "chat": group,
                    "message_id": 1,
                    "date": now,
                    "reactions": [{"type": {"type": "emoji", "emoji": "🔥"}, "total_count": 3}],
                }
            },
            {
                "pre_checkout_query": {
                    "id": "pc",
                    "from": user,
                    "currency": "XTR",
                    "total_amount": 1,
                    "invoice_payload": self.texts.short(30),
                }
            },
            {
                "business_message": {
                    **self._message(self._private_chat(user), self._command_text(), user),
                    "message_id": rng.randint(1, 1000),
                    "business_connection_id": "bc",
                }
            },
            {
                "deleted_business_messages": {
                    "business_connection_id": "bc",
                    "chat": self._private_chat(user),
                    "message_ids": [1, 2],
                }
            },
        ]
        return self._send_raw(rng.choice(options), "unsubscribed type")
