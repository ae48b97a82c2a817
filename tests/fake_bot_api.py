"""A local fake Telegram Bot API server for end-to-end tests.

Start it, point python-telegram-bot at it with ``base_url=server.base_url`` and drive it
from the test through the synchronous, thread-safe control API::

    with FakeBotApi() as api:
        app = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
        ...
        api.private_message(42, "/start")
        msg = api.wait_for_message(42, contains="Welcome")

Standalone (e.g. for benchmarks): ``python tests/fake_bot_api.py --port 8081``. Other
processes can then drive it with ``POST /_control/<method>`` and a JSON body of kwargs,
e.g. ``/_control/private_message`` with ``{"user_id": 1, "text": "/start"}``.
"""

from __future__ import annotations

import argparse
import copy
import email.parser
import email.policy
import itertools
import json
import re
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

if not __package__:  # run as a script: make ``tests`` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests import fake_bot_api_html as tg_html  # noqa: E402

JSON = dict[str, Any]
MAX_TEXT_LENGTH = 4096
# "too_long": Telegram counted a text longer than the sender did (the sender must split more).
FAULT_KINDS = ("429", "500", "slow", "bad_entities", "too_long", "drop")
MEMBER_STATUSES = ("creator", "administrator", "member", "restricted", "left", "kicked")
# Form fields that are plain strings; everything else PTB sends JSON-encoded.
_STRING_PARAMS = frozenset(
    [
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "url",
        "secret_token",
        "ip_address",
        "action",
        "language_code",
        "title",
        "description",
        "short_description",
        "name",
        "business_connection_id",
        "message_effect_id",
        "query",
        "emoji",
        "custom_title",
        "data",
    ]
)
_OPT_IN_UPDATES = frozenset(["chat_member", "message_reaction", "message_reaction_count"])
_CHAT_ACTIONS = frozenset(
    [
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ]
)
_ADMIN_RIGHTS = [
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_change_info",
    "can_invite_users",
    "can_post_messages",
    "can_edit_messages",
    "can_pin_messages",
]
_ADMIN_DENIED = [
    "can_promote_members",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
]
_RESTRICTED_DENIED = [
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_send_messages",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_manage_topics",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_edit_tag",
    "can_react_to_messages",
]
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and "
    "reply markup are exactly the same as a current content and reply markup "
    "of the message"
)
_BAD_QUERY = "Bad Request: query is too old and response timeout expired or query ID is invalid"


class ApiError(Exception):
    """A Telegram error answer: HTTP ``code`` plus ``description`` (and ``parameters``)."""

    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters

    def payload(self) -> JSON:
        """The JSON body Telegram would send for this error."""
        body: JSON = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


@dataclass
class Call:
    """One Bot API request as received by the server (``params`` already JSON-decoded)."""

    method: str
    params: JSON
    time: float
    fault: str | None = None  # fault kind injected into this call, if any
    status: int | None = None  # HTTP status answered; None while still pending
    response: Any = None  # ``result`` on success, the error description otherwise

    @property
    def faulted(self) -> bool:
        """True if an injected fault was applied to this call."""
        return self.fault is not None


@dataclass
class _Fault:
    kind: str
    remaining: int
    retry_after: int
    delay: float


@dataclass
class _Chat:
    id: int
    type: str
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    bot_status: str = "member"  # "left"/"kicked" make sends fail with 403
    last_message_id: int = 0

    def public(self) -> JSON:
        """The ``Chat`` object as embedded in messages."""
        fields = {"title": self.title, "username": self.username, "first_name": self.first_name}
        return {"id": self.id, "type": self.type, **{k: v for k, v in fields.items() if v}}


def _decode_value(key: str, raw: str) -> Any:
    """Undo PTB's form encoding: non-string values arrive as JSON text."""
    if key in _STRING_PARAMS:
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return raw if value is None or isinstance(value, str) else value


def decode_params(query: str, content_type: str, body: bytes) -> JSON:
    """Decode query string + urlencoded / multipart / JSON bodies into one params dict."""
    params: JSON = {k: _decode_value(k, v) for k, v in parse_qsl(query)}
    ctype = content_type.split(";")[0].strip().lower()
    if not body:
        return params
    if ctype == "application/json":
        params.update(json.loads(body))
    elif ctype == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        for part in msg.iter_parts():
            name = str(part.get_param("name", header="content-disposition"))
            raw = part.get_payload(decode=True)
            payload = raw if isinstance(raw, bytes) else b""
            if part.get_filename():
                params[name] = {"filename": part.get_filename(), "size": len(payload)}
            else:
                params[name] = _decode_value(name, payload.decode("utf-8"))
    else:
        params.update({k: _decode_value(k, v) for k, v in parse_qsl(body.decode("utf-8"))})
    return params


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like api.telegram.org
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes: without NODELAY, Nagle + delayed ACK
        # would add ~40 ms to every request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        self.server.connections.discard(self.connection)
        super().finish()

    def do_POST(self) -> None:
        self.server.api._serve(self)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: FakeBotApi) -> None:
        self.api = api
        self.connections: set[socket.socket] = set()
        super().__init__(address, _Handler)


class FakeBotApi:
    """Fake Telegram Bot API over HTTP on 127.0.0.1, with a control API for tests."""

    def __init__(
        self,
        token: str = "123456:TEST-TOKEN",
        username: str = "newsbot_test_bot",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auto_create_chats: bool = False,
    ) -> None:
        self.token, self.username, self.host = token, username, host
        self.auto_create_chats = auto_create_chats
        prefix = token.split(":", 1)[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 123456
        self._port = port
        self._cond = threading.Condition(threading.RLock())
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._update_ids = itertools.count(1)
        self._poll_generation = 0  # a newer getUpdates terminates a waiting one (409)
        self._callback_ids = itertools.count(1)
        self._users: dict[int, JSON] = {}
        self._chats: dict[int, _Chat] = {}
        self._members: dict[tuple[int, int], str] = {}
        self._messages: dict[tuple[int, int], JSON] = {}
        self._bot_records: dict[tuple[int, int], JSON] = {}  # {"message","edits","deleted"}
        self._updates: list[JSON] = []
        self._raw_ids: set[int] = set()  # raw_update()s: delivered whatever allowed_updates
        self._allowed_updates: list[str] = []
        self._callbacks: dict[str, JSON | None] = {}
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self._webhook: JSON = {"url": ""}
        self._faults: dict[str, list[_Fault]] = {}
        self._calls: list[Call] = []
        self._methods: dict[str, tuple[str, Callable[[JSON], Any]]] = {
            name.lower(): (name, fn) for name, fn in self._api_table().items()
        }

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeBotApi:
        """Bind (port 0 = pick a free port) and serve in a daemon thread."""
        self._stopping.clear()
        self._server = _Server((self.host, self._port), self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="FakeBotApi", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake long polls, close connections and join the thread."""
        if self._server is None:
            return
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self._server.shutdown()
        for conn in list(self._server.connections):
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (after ``start()``)."""
        return self._port

    @property
    def base_url(self) -> str:
        """Value for PTB's ``base_url``: ``http://127.0.0.1:PORT/bot``."""
        return f"http://{self.host}:{self._port}/bot"

    @property
    def bot_user(self) -> JSON:
        """The bot's ``User`` object as it appears in ``from`` fields."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Newsbot",
            "username": self.username,
        }

    # ------------------------------------------------------------------ HTTP plumbing
    def _serve(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if url.path.startswith("/_control/"):
            self._serve_control(handler, url.path.removeprefix("/_control/"), body)
            return
        parts = url.path.split("/")
        if len(parts) != 3 or not parts[1].startswith("bot"):
            self._respond(handler, 404, ApiError(404, "Not Found").payload())
            return
        if parts[1][3:] != self.token:
            self._respond(handler, 401, ApiError(401, "Unauthorized").payload())
            return
        try:
            params = decode_params(url.query, handler.headers.get("Content-Type", ""), body)
        except ValueError as exc:
            self._respond(handler, 400, ApiError(400, f"Bad Request: {exc}").payload())
            return
        name, func = self._methods.get(parts[2].lower(), (parts[2], None))
        call = Call(name, params, time.time())
        with self._cond:
            self._calls.append(call)
            fault = self._take_fault(name) if func else None
        call.fault = fault.kind if fault else None
        if fault and fault.kind == "drop":
            handler.close_connection = True
            call.status = 0
            return
        status, payload = self._execute(func, params, fault)
        call.status = status
        call.response = payload.get("result", payload.get("description"))
        self._respond(handler, status, payload)

    def _execute(
        self, func: Callable[[JSON], Any] | None, params: JSON, fault: _Fault | None
    ) -> tuple[int, JSON]:
        try:
            if func is None:
                raise ApiError(404, "Not Found: method not found")
            if fault:
                self._apply_fault(fault)
            with self._cond:
                return 200, {"ok": True, "result": copy.deepcopy(func(params))}
        except ApiError as err:
            return err.code, err.payload()
        except (KeyError, TypeError, ValueError) as exc:
            return 400, ApiError(400, f"Bad Request: invalid parameters: {exc!r}").payload()
        except Exception as exc:  # a bug in the fake itself: make it loud, keep serving
            traceback.print_exc()
            return 500, ApiError(500, f"Internal Server Error: fake_bot_api: {exc!r}").payload()

    def _apply_fault(self, fault: _Fault) -> None:
        if fault.kind == "429":
            raise ApiError(
                429,
                f"Too Many Requests: retry after {fault.retry_after}",
                {"retry_after": fault.retry_after},
            )
        if fault.kind == "500":
            raise ApiError(500, "Internal Server Error")
        if fault.kind == "bad_entities":
            raise ApiError(
                400,
                "Bad Request: can't parse entities: Unsupported start tag "
                '"fault" at byte offset 0',
            )
        if fault.kind == "too_long":
            raise ApiError(400, "Bad Request: message is too long")
        self._stopping.wait(fault.delay)  # "slow": answer normally afterwards

    @staticmethod
    def _respond(handler: _Handler, status: int, payload: JSON) -> None:
        body = json.dumps(payload).encode("utf-8")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:  # the client gave up (e.g. PTB cancelled a long poll)
            handler.close_connection = True

    _CONTROL = frozenset(
        [
            "private_message",
            "group_message",
            "channel_post",
            "edited_channel_post",
            "edited_message",
            "callback_query",
            "my_chat_member",
            "set_member_status",
            "block_chat",
            "forget_chat",
            "inject_fault",
            "clear_faults",
            "bot_messages",
            "clear_calls",
            "call_counts",
            "enqueue_update",
        ]
    )

    def _serve_control(self, handler: _Handler, name: str, body: bytes) -> None:
        """``POST /_control/<name>`` with JSON kwargs: drive the server from another process."""
        if name not in self._CONTROL:
            self._respond(handler, 404, ApiError(404, "Not Found: control method").payload())
            return
        try:
            result = getattr(self, name)(**(json.loads(body) if body else {}))
        except (TypeError, ValueError, KeyError, AssertionError) as exc:
            self._respond(handler, 400, ApiError(400, f"Bad Request: {exc!r}").payload())
            return
        self._respond(handler, 200, {"ok": True, "result": result})

    # ------------------------------------------------------------------ chats & users
    def _user(
        self, user_id: int, first_name: str | None = None, username: str | None = None
    ) -> JSON:
        user = self._users.setdefault(
            user_id,
            {
                "id": user_id,
                "is_bot": False,
                "first_name": first_name or "User",
                "language_code": "en",
            },
        )
        if first_name:
            user["first_name"] = first_name
        if username:
            user["username"] = username
        return user

    def _ensure_chat(self, chat_id: int, chat_type: str, **names: str | None) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            status = "administrator" if chat_type == "channel" else "member"
            chat = self._chats[chat_id] = _Chat(chat_id, chat_type, bot_status=status)
        chat.type = chat_type
        for key, value in names.items():
            if value:
                setattr(chat, key, value)
        return chat

    def _chat(self, chat_id: Any) -> _Chat:
        """Look a chat up by id or ``@username``; 400 ``chat not found`` if unknown."""
        if isinstance(chat_id, str) and chat_id.startswith("@"):
            for chat in self._chats.values():
                if chat.username and chat.username.lower() == chat_id[1:].lower():
                    return chat
        elif str(chat_id).lstrip("-").isdigit():
            if known := self._chats.get(int(chat_id)):
                return known
            if self.auto_create_chats:
                kind = "private" if int(chat_id) > 0 else "supergroup"
                return self._ensure_chat(int(chat_id), kind, title="Auto chat", first_name="Auto")
        raise ApiError(400, "Bad Request: chat not found")

    def _implicit_chat(self, chat_id: int) -> _Chat:
        """Known chat, or a new private chat (id > 0) / supergroup (id < 0) for control calls."""
        if chat_id in self._chats:
            return self._chats[chat_id]
        if chat_id > 0:
            user = self._user(chat_id)
            return self._ensure_chat(chat_id, "private", first_name=user["first_name"])
        return self._ensure_chat(chat_id, "supergroup", title="Test group")

    def _writable_chat(self, chat_id: Any) -> _Chat:
        """Like ``_chat`` but 403 if the bot was blocked / kicked / is not a member."""
        chat = self._chat(chat_id)
        if chat.bot_status in ("left", "kicked"):
            if chat.type == "private":
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            reason = "was kicked from" if chat.bot_status == "kicked" else "is not a member of"
            raise ApiError(403, f"Forbidden: bot {reason} the {chat.type} chat")
        return chat

    def _member(self, chat: _Chat, user_id: int) -> JSON:
        if user_id == self.bot_id:
            user, status = self.bot_user, chat.bot_status
        else:
            user, status = self._user(user_id), self._members.get((chat.id, user_id), "member")
        member: JSON = {"status": status, "user": copy.deepcopy(user)}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update(dict.fromkeys(_ADMIN_RIGHTS, True), can_be_edited=False)
            member.update(dict.fromkeys(_ADMIN_DENIED, False), is_anonymous=False)
        elif status == "restricted":
            member.update(dict.fromkeys(_RESTRICTED_DENIED, False), is_member=True, until_date=0)
        elif status == "kicked":
            member["until_date"] = 0
        return member

    # ------------------------------------------------------------------ messages & updates
    def _new_message(
        self, chat: _Chat, sender: JSON | None, text: str, entities: list[JSON]
    ) -> JSON:
        chat.last_message_id += 1
        msg: JSON = {
            "message_id": chat.last_message_id,
            "date": int(time.time()),
            "chat": chat.public(),
        }
        if chat.type == "channel":
            msg["sender_chat"] = chat.public()
        else:
            msg["from"] = copy.deepcopy(sender or self.bot_user)
        msg["text"] = text
        if entities:
            msg["entities"] = entities
        self._messages[(chat.id, msg["message_id"])] = msg
        return msg

    def _reply_copy(self, chat_id: int, message_id: int) -> JSON | None:
        original = self._messages.get((chat_id, message_id))
        if original is None:
            return None
        reply = copy.deepcopy(original)
        reply.pop("reply_to_message", None)
        return reply

    def _enqueue(self, kind: str, obj: JSON) -> JSON:
        update = {"update_id": next(self._update_ids), kind: copy.deepcopy(obj)}
        self._updates.append(update)
        self._cond.notify_all()
        return update

    def _format(self, params: JSON, key: str = "text") -> tuple[str, list[JSON]]:
        """Apply parse_mode / entities and Telegram's text checks; return (text, entities)."""
        raw = params.get(key)
        if raw is None or raw == "":
            raise ApiError(400, "Bad Request: message text is empty")
        text, entities = str(raw), list(params.get("entities") or [])
        if str(params.get("parse_mode") or "").lower() == "html":
            try:
                text, entities = tg_html.parse_html(text)
            except tg_html.HtmlParseError as err:
                raise ApiError(400, f"Bad Request: can't parse entities: {err}") from None
        text, entities = tg_html.strip_text(text, entities)
        if not text:
            raise ApiError(400, "Bad Request: message text is empty")
        if tg_html.utf16_len(text) > MAX_TEXT_LENGTH:
            raise ApiError(400, "Bad Request: message is too long")
        return text, _merge_entities(entities, tg_html.auto_entities(text))

    def _store_bot_message(self, msg: JSON) -> None:
        key = (msg["chat"]["id"], msg["message_id"])
        self._bot_records[key] = {"message": msg, "edits": [], "deleted": False}

    def _edit_user_message(self, kind: str, chat_id: int, message_id: int, new_text: str) -> JSON:
        with self._cond:
            msg = self._messages.get((chat_id, message_id))
            if msg is None:
                raise KeyError(f"no message {message_id} in chat {chat_id}")
            msg.update(text=new_text, edit_date=int(time.time()))
            msg.pop("entities", None)
            if entities := tg_html.auto_entities(new_text):
                msg["entities"] = entities
            self._enqueue(kind, msg)
            return copy.deepcopy(msg)

    # ------------------------------------------------------------------ Bot API methods
    def _api_table(self) -> dict[str, Callable[[JSON], Any]]:
        always_true = [
            "close",
            "logOut",
            "setMyDescription",
            "setMyShortDescription",
            "setMyName",
            "setChatMenuButton",
            "setMyDefaultAdministratorRights",
        ]
        table: dict[str, Callable[[JSON], Any]] = dict.fromkeys(always_true, lambda p: True)
        table.update(
            {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "sendMessage": self._send_message,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_reply_markup,
                "deleteMessage": self._delete_message,
                "answerCallbackQuery": self._answer_callback_query,
                "sendChatAction": self._send_chat_action,
                "setMyCommands": self._set_my_commands,
                "getMyCommands": self._get_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "getChat": self._get_chat,
                "getChatMember": self._get_chat_member,
                "getChatAdministrators": self._get_chat_administrators,
            }
        )
        return table

    def _get_me(self, _params: JSON) -> JSON:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _get_updates(self, params: JSON) -> list[JSON]:
        if self._webhook["url"]:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is "
                "active; use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        if isinstance(params.get("allowed_updates"), list):
            self._allowed_updates = list(params["allowed_updates"])
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        self._poll_generation += 1
        generation = self._poll_generation
        self._cond.notify_all()
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only "
                    "one bot instance is running",
                )
            self._updates = [u for u in self._updates if self._is_allowed(u)]
            remaining = deadline - time.monotonic()
            if self._updates or remaining <= 0 or self._stopping.is_set():
                return self._updates[:limit]
            self._cond.wait(remaining)

    def _is_allowed(self, update: JSON) -> bool:
        if update["update_id"] in self._raw_ids:
            return True
        kind = next(k for k in update if k != "update_id")
        if self._allowed_updates:
            return kind in self._allowed_updates
        return kind not in _OPT_IN_UPDATES

    def _send_message(self, params: JSON) -> JSON:
        chat = self._writable_chat(params.get("chat_id"))
        text, entities = self._format(params)
        markup = _inline_markup(params)  # refuses bad buttons before anything is stored
        reply = params.get("reply_parameters") or {}
        if not reply and params.get("reply_to_message_id"):
            reply = {
                "message_id": params["reply_to_message_id"],
                "allow_sending_without_reply": params.get("allow_sending_without_reply"),
            }
        replied = None
        if reply:
            target = self._chat(reply["chat_id"]).id if reply.get("chat_id") else chat.id
            replied = self._reply_copy(target, int(reply["message_id"]))
            if replied is None and not reply.get("allow_sending_without_reply"):
                raise ApiError(400, "Bad Request: message to be replied not found")
        msg = self._new_message(chat, None, text, entities)
        if replied:
            msg["reply_to_message"] = replied
        if markup:
            msg["reply_markup"] = markup
        preview = params.get("link_preview_options")
        if params.get("disable_web_page_preview"):
            preview = {"is_disabled": True}
        if preview:
            msg["link_preview_options"] = preview
        self._store_bot_message(msg)
        return msg

    def _bot_message_for_edit(self, params: JSON) -> JSON:
        chat = self._writable_chat(params.get("chat_id"))
        key = (chat.id, int(params.get("message_id") or 0))
        if key not in self._messages:
            raise ApiError(400, "Bad Request: message to edit not found")
        if key not in self._bot_records:
            raise ApiError(400, "Bad Request: message can't be edited")
        return self._bot_records[key]

    def _edit_message_text(self, params: JSON) -> JSON | bool:
        if params.get("inline_message_id"):
            self._format(params)
            return True
        record = self._bot_message_for_edit(params)
        msg = record["message"]
        text, entities = self._format(params)
        markup = _inline_markup(params)
        if (text, entities, markup) == (
            msg["text"],
            msg.get("entities", []),
            msg.get("reply_markup"),
        ):
            raise ApiError(400, _NOT_MODIFIED)
        record["edits"].append(
            {"text": text, "previous_text": msg["text"], "date": int(time.time())}
        )
        msg.update(text=text, entities=entities, reply_markup=markup, edit_date=int(time.time()))
        for key in ("entities", "reply_markup"):
            if not msg[key]:
                del msg[key]
        return msg

    def _edit_reply_markup(self, params: JSON) -> JSON | bool:
        if params.get("inline_message_id"):
            return True
        msg = self._bot_message_for_edit(params)["message"]
        markup = _inline_markup(params)
        if markup == msg.get("reply_markup"):
            raise ApiError(400, _NOT_MODIFIED)
        msg.pop("reply_markup", None)
        if markup:
            msg["reply_markup"] = markup
        msg["edit_date"] = int(time.time())
        return msg

    def _delete_message(self, params: JSON) -> bool:
        chat = self._writable_chat(params.get("chat_id"))
        key = (chat.id, int(params.get("message_id") or 0))
        if self._messages.pop(key, None) is None:
            raise ApiError(400, "Bad Request: message to delete not found")
        if key in self._bot_records:
            self._bot_records[key]["deleted"] = True
        return True

    def _answer_callback_query(self, params: JSON) -> bool:
        query_id = str(params.get("callback_query_id"))
        if query_id not in self._callbacks or self._callbacks[query_id] is not None:
            raise ApiError(400, _BAD_QUERY)
        self._callbacks[query_id] = dict(params)
        return True

    def _send_chat_action(self, params: JSON) -> bool:
        self._writable_chat(params.get("chat_id"))
        if params.get("action") not in _CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    @staticmethod
    def _scope_key(params: JSON) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    def _set_my_commands(self, params: JSON) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: BOT_COMMANDS_TOO_MUCH")
        for cmd in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(cmd.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(cmd.get("description", "")).strip()) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self._commands[self._scope_key(params)] = commands
        return True

    def _get_my_commands(self, params: JSON) -> list[JSON]:
        return self._commands.get(self._scope_key(params), [])

    def _delete_my_commands(self, params: JSON) -> bool:
        self._commands.pop(self._scope_key(params), None)
        return True

    def _set_webhook(self, params: JSON) -> bool:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self._webhook = {k: v for k, v in params.items() if k != "drop_pending_updates"}
        self._webhook.setdefault("url", "")
        return True

    def _delete_webhook(self, params: JSON) -> bool:
        return self._set_webhook({"url": "", **params})

    def _get_webhook_info(self, _params: JSON) -> JSON:
        info: JSON = {
            "url": self._webhook["url"],
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        for key in ("max_connections", "allowed_updates", "ip_address"):
            if key in self._webhook:
                info[key] = self._webhook[key]
        return info

    def _get_chat(self, params: JSON) -> JSON:
        chat = self._chat(params.get("chat_id"))
        if chat.type != "private":
            self._writable_chat(chat.id)
        gifts = dict.fromkeys(
            (
                "unlimited_gifts",
                "limited_gifts",
                "unique_gifts",
                "premium_subscription",
                "gifts_from_channels",
            ),
            False,
        )
        return {
            **chat.public(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": gifts,
        }

    def _get_chat_member(self, params: JSON) -> JSON:
        chat = self._chat(params.get("chat_id"))
        if chat.type != "private":
            self._writable_chat(chat.id)
        return self._member(chat, int(params["user_id"]))

    def _get_chat_administrators(self, params: JSON) -> list[JSON]:
        chat = self._writable_chat(params.get("chat_id"))
        if chat.type == "private":
            raise ApiError(400, "Bad Request: there are no administrators in the private chat")
        user_ids = [
            uid
            for (cid, uid), status in self._members.items()
            if cid == chat.id and status in ("creator", "administrator")
        ]
        if chat.bot_status in ("creator", "administrator"):
            user_ids.append(self.bot_id)
        return [self._member(chat, uid) for uid in user_ids]

    # ------------------------------------------------------------------ control API: input
    def private_message(
        self,
        user_id: int,
        text: str,
        first_name: str = "Ann",
        *,
        username: str | None = None,
        reply_to_message_id: int | None = None,
    ) -> JSON:
        """A user writes ``text`` to the bot in private; enqueue a ``message`` update."""
        with self._cond:
            user = self._user(user_id, first_name, username)
            chat = self._ensure_chat(
                user_id, "private", first_name=user["first_name"], username=user.get("username")
            )
            return self._user_message(chat, user, text, reply_to_message_id)

    def group_message(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        reply_to_message_id: int | None = None,
        title: str = "Test group",
        chat_type: str = "supergroup",
        first_name: str = "Ann",
        username: str | None = None,
    ) -> JSON:
        """A user writes in a group/supergroup; enqueue a ``message`` update."""
        with self._cond:
            user = self._user(user_id, first_name, username)
            chat = self._ensure_chat(chat_id, chat_type, title=title)
            return self._user_message(chat, user, text, reply_to_message_id)

    def _user_message(
        self, chat: _Chat, user: JSON, text: str, reply_to_message_id: int | None
    ) -> JSON:
        replied = None
        if reply_to_message_id is not None:
            replied = self._reply_copy(chat.id, reply_to_message_id)
            if replied is None:
                raise KeyError(f"no message {reply_to_message_id} in chat {chat.id}")
        msg = self._new_message(chat, user, text, tg_html.auto_entities(text))
        if replied:
            msg["reply_to_message"] = replied
        self._enqueue("message", msg)
        return copy.deepcopy(msg)

    def channel_post(
        self, chat_id: int, text: str, title: str = "Test channel", *, username: str | None = None
    ) -> JSON:
        """A post appears in a channel (``sender_chat`` = the channel); enqueue ``channel_post``."""
        with self._cond:
            chat = self._ensure_chat(chat_id, "channel", title=title, username=username)
            msg = self._new_message(chat, None, text, tg_html.auto_entities(text))
            self._enqueue("channel_post", msg)
            return copy.deepcopy(msg)

    def edited_channel_post(self, chat_id: int, message_id: int, new_text: str) -> JSON:
        """Edit an existing channel post; enqueue ``edited_channel_post``."""
        return self._edit_user_message("edited_channel_post", chat_id, message_id, new_text)

    def edited_message(self, chat_id: int, message_id: int, new_text: str) -> JSON:
        """Edit an existing user message; enqueue ``edited_message``."""
        return self._edit_user_message("edited_message", chat_id, message_id, new_text)

    def callback_query(
        self, chat_id: int, user_id: int, message_id: int, data: str, *, first_name: str = "Ann"
    ) -> str:
        """User taps an inline button of the bot's message; return the callback query id."""
        with self._cond:
            record = self._bot_records.get((chat_id, message_id))
            if record is None or record["deleted"]:
                raise KeyError(f"bot message {message_id} not found in chat {chat_id}")
            query_id = f"{self.bot_id}{next(self._callback_ids):06d}"
            self._callbacks[query_id] = None
            self._enqueue(
                "callback_query",
                {
                    "id": query_id,
                    "from": self._user(user_id, first_name),
                    "message": record["message"],
                    "chat_instance": f"ci{chat_id}",
                    "data": data,
                },
            )
            return query_id

    def my_chat_member(
        self,
        chat_id: int,
        chat_type: str,
        new_status: str = "administrator",
        by_user_id: int | None = None,
        *,
        title: str | None = None,
    ) -> JSON:
        """The bot's own membership changes (added, promoted, kicked, blocked...)."""
        if new_status not in MEMBER_STATUSES:
            raise ValueError(f"unknown status {new_status!r}")
        with self._cond:
            existed = chat_id in self._chats
            default_title = None if chat_type == "private" else title or "Test group"
            chat = self._ensure_chat(
                chat_id,
                chat_type,
                title=default_title,
                first_name="Ann" if chat_type == "private" else None,
            )
            old = (
                self._member(chat, self.bot_id)
                if existed
                else {"status": "left", "user": self.bot_user}
            )
            chat.bot_status = new_status
            actor = self._user(by_user_id if by_user_id is not None else abs(chat_id))
            event = {
                "chat": chat.public(),
                "from": actor,
                "date": int(time.time()),
                "old_chat_member": old,
                "new_chat_member": self._member(chat, self.bot_id),
            }
            self._enqueue("my_chat_member", event)
            return copy.deepcopy(event)

    def set_member_status(self, chat_id: int, user_id: int, status: str) -> None:
        """Set what ``getChatMember`` answers for ``user_id`` (the bot id sets the bot's own)."""
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self._cond:
            chat = self._implicit_chat(chat_id)
            if user_id == self.bot_id:
                chat.bot_status = status
            else:
                self._user(user_id)
                self._members[(chat.id, user_id)] = status

    def block_chat(self, chat_id: int, blocked: bool = True) -> None:
        """User blocks the bot (private) / bot is kicked (groups): sends then get 403."""
        with self._cond:
            chat = self._implicit_chat(chat_id)
            unblocked = "administrator" if chat.type == "channel" else "member"
            chat.bot_status = "kicked" if blocked else unblocked

    def forget_chat(self, chat_id: int) -> None:
        """Make the chat unknown: subsequent calls get 400 ``chat not found``."""
        with self._cond:
            self._chats.pop(int(chat_id), None)

    def enqueue_update(self, update: JSON) -> int:
        """Enqueue a raw update (``update_id`` is assigned); return its update_id."""
        with self._cond:
            kind, obj = next((k, v) for k, v in update.items() if k != "update_id")
            return int(self._enqueue(kind, obj)["update_id"])

    def raw_update(self, update: JSON) -> JSON:
        """Enqueue ``update`` verbatim, unknown keys and all (for fuzzing); return it as sent.

        ``update_id`` is assigned, and the update is delivered even if the bot's
        ``allowed_updates`` leaves its kind out (as a webhook or a newer Telegram might).
        A message in it without ``message_id`` gets its chat's next one; every message is
        stored so the bot can reply to it, and a ``callback_query`` becomes answerable.
        """
        with self._cond:
            raw = {**copy.deepcopy(update), "update_id": next(self._update_ids)}
            for kind in ("message", "edited_message", "channel_post", "edited_channel_post"):
                msg = raw.get(kind)
                if isinstance(msg, dict) and isinstance(msg.get("chat"), dict):
                    names = {k: msg["chat"].get(k) for k in ("title", "username", "first_name")}
                    chat = self._ensure_chat(int(msg["chat"]["id"]), msg["chat"]["type"], **names)
                    if "message_id" not in msg:
                        chat.last_message_id += 1
                        msg["message_id"] = chat.last_message_id
                    self._messages[(chat.id, msg["message_id"])] = copy.deepcopy(msg)
            if isinstance(raw.get("callback_query"), dict):
                self._callbacks.setdefault(str(raw["callback_query"].get("id")), None)
            self._raw_ids.add(raw["update_id"])
            self._updates.append(raw)
            self._cond.notify_all()
            return copy.deepcopy(raw)

    def inject_fault(
        self, method: str, kind: str, count: int = 1, retry_after: int = 1, delay: float = 2.0
    ) -> None:
        """Make the next ``count`` calls of ``method`` fail with one of ``FAULT_KINDS``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}")
        with self._cond:
            self._faults.setdefault(method.lower(), []).append(
                _Fault(kind, count, retry_after, delay)
            )

    def clear_faults(self) -> None:
        """Drop all pending injected faults."""
        with self._cond:
            self._faults.clear()

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method.lower())
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.pop(0)
        return fault

    # ------------------------------------------------------------------ control API: observe
    def calls(self, method: str | None = None) -> list[Call]:
        """Recorded requests (oldest first), optionally only those of ``method``."""
        with self._cond:
            return [c for c in self._calls if method is None or c.method.lower() == method.lower()]

    def call_counts(self) -> dict[str, int]:
        """Number of recorded requests per method."""
        counts: dict[str, int] = {}
        for call in self.calls():
            counts[call.method] = counts.get(call.method, 0) + 1
        return counts

    def clear_calls(self) -> None:
        """Forget the recorded requests."""
        with self._cond:
            self._calls.clear()

    def bot_messages(self, chat_id: int | None = None) -> list[JSON]:
        """Messages the bot sent (current state) plus ``edits`` history and ``deleted`` flag."""
        with self._cond:
            return [
                {
                    **copy.deepcopy(rec["message"]),
                    "edits": copy.deepcopy(rec["edits"]),
                    "deleted": rec["deleted"],
                }
                for (cid, _), rec in self._bot_records.items()
                if chat_id is None or cid == chat_id
            ]

    def message(self, chat_id: int, message_id: int) -> JSON | None:
        """Any stored (not deleted) message, user's or bot's."""
        with self._cond:
            return copy.deepcopy(self._messages.get((chat_id, message_id)))

    def callback_answer(self, query_id: str) -> JSON | None:
        """The ``answerCallbackQuery`` params for ``query_id`` (None if not answered yet)."""
        with self._cond:
            return copy.deepcopy(self._callbacks.get(query_id))

    def commands(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        """Commands stored by ``setMyCommands`` for ``scope`` and ``language_code``."""
        with self._cond:
            key = self._scope_key({"scope": scope, "language_code": language_code})
            return copy.deepcopy(self._commands.get(key, []))

    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by a ``getUpdates`` offset."""
        with self._cond:
            return copy.deepcopy(self._updates)

    def wait_for(self, predicate: Callable[[FakeBotApi], Any], timeout: float = 10.0) -> Any:
        """Poll ``predicate(self)`` until truthy and return it; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"wait_for timed out after {timeout}s\n{self.dump()}")
            time.sleep(0.02)

    def wait_for_message(
        self,
        chat_id: int,
        contains: str | None = None,
        timeout: float = 10.0,
        after_message_id: int | None = None,
    ) -> JSON:
        """Wait for a bot message in ``chat_id`` (newer than ``after_message_id``)."""

        def find(api: FakeBotApi) -> JSON | None:
            for msg in api.bot_messages(chat_id):
                if after_message_id is not None and msg["message_id"] <= after_message_id:
                    continue
                if contains is None or contains in msg["text"]:
                    return msg
            return None

        return self.wait_for(find, timeout)

    def dump(self, last: int = 20) -> str:
        """Human-readable summary of recent non-getUpdates calls (for failure messages)."""
        calls = [c for c in self.calls() if c.method != "getUpdates"][-last:]
        lines = [f"recent calls ({len(calls)} shown, getUpdates omitted):"]
        for call in calls:
            flag = f" [fault={call.fault}]" if call.fault else ""
            lines.append(
                f"  {call.method}{flag} {json.dumps(call.params)[:300]} "
                f"-> {call.status} {str(call.response)[:200]}"
            )
        return "\n".join(lines)


def _inline_markup(params: JSON) -> JSON | None:
    """The reply_markup Telegram echoes in Message objects (inline keyboards only).

    Refuses the buttons Telegram refuses: a url that is not http(s) with a host or tg://
    (``BUTTON_URL_INVALID``), callback_data outside 1-64 bytes (``BUTTON_DATA_INVALID``),
    and a button with no action (``can't parse inline keyboard button``).
    """
    markup = params.get("reply_markup")
    if not (isinstance(markup, dict) and "inline_keyboard" in markup):
        return None
    for row in markup["inline_keyboard"]:
        for button in row:
            _check_button(button)
    return markup


_BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def _check_button(button: JSON) -> None:
    """Raise the ApiError Telegram answers for one bad inline keyboard button."""
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise ApiError(
            400,
            'Bad Request: can\'t parse inline keyboard button: Field "text" must be of type String',
        )
    if not any(key in button for key in _BUTTON_ACTIONS):
        raise ApiError(
            400,
            "Bad Request: can't parse inline keyboard button: "
            "Text buttons are unallowed in the inline keyboard",
        )
    if "url" in button:
        url = urlsplit(str(button["url"]))
        web = url.scheme.lower() in ("http", "https") and bool(url.hostname)
        if not web and url.scheme.lower() != "tg":
            raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode("utf-8")) <= 64:
        raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")


def _merge_entities(explicit: list[JSON], auto: list[JSON]) -> list[JSON]:
    """Add auto-detected entities that don't overlap explicit ones; sort like Telegram."""

    def overlaps(a: JSON, b: JSON) -> bool:
        return a["offset"] < b["offset"] + b["length"] and b["offset"] < a["offset"] + a["length"]

    merged = explicit + [a for a in auto if not any(overlaps(a, e) for e in explicit)]
    return sorted(merged, key=lambda e: (e["offset"], -e["length"]))


def main(argv: list[str] | None = None) -> None:
    """CLI: serve until Ctrl-C / SIGTERM, printing the base_url."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token", default="123456:TEST-TOKEN")
    parser.add_argument("--username", default="newsbot_test_bot")
    parser.add_argument(
        "--strict-chats",
        action="store_true",
        help="unknown chat ids give 'chat not found' instead of being created",
    )
    args = parser.parse_args(argv)
    api = FakeBotApi(
        args.token,
        args.username,
        host=args.host,
        port=args.port,
        auto_create_chats=not args.strict_chats,
    )
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with api:
        print(f"base_url={api.base_url} token={api.token}", flush=True)
        while not done.wait(0.5):
            pass


if __name__ == "__main__":
    main()
