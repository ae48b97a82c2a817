"""A tiny OpenAI-compatible chat-completions server for tests (stdlib only, 127.0.0.1 only).

Tests set its behaviour while it runs::

    with OpenAICompatServer() as llm:
        llm.reply = lambda request: '{"answer": "Yes.", "quotes": [...]}'
        llm.mode = "ok"            # or invents_quotes, wrong_passage, garbage,
                                   # garbage_body, hang, http_500
        config = LlmConfig(base_url=llm.base_url, model="test-model")
        ...
        llm.requests[0].json["messages"], llm.requests[0].headers["authorization"]

Modes:

* ``ok``: the message content is ``reply(request_json)`` (None gives a null content).
* ``invents_quotes``: ``reply``'s answer (or a stock one) with every quote's text replaced
  by words no passage holds (``invented``), passage numbers kept.
* ``wrong_passage``: ``reply``'s JSON with every quote citing ``wrong_passage`` (7).
* ``garbage``: prose with no JSON object in it, as a 200 chat completion.
* ``garbage_body``: a 200 response whose body is not JSON at all.
* ``hang``: wait ``hang_seconds`` (bounded; ``stop()`` wakes it) before replying.
* ``http_500``: an OpenAI-shaped error body with status 500.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple

from tests.servers.lifecycle import ServerLifecycle

__all__ = ["OpenAICompatServer", "RecordedCall", "Mode"]

Mode = Literal[
    "ok", "invents_quotes", "wrong_passage", "garbage", "garbage_body", "hang", "http_500"
]
Reply = Callable[[dict[str, Any]], "str | None"]

ABSTAIN = '{"answer": "", "quotes": []}'
INVENTED = "The committee unanimously rejected every single proposal on the table."
GARBAGE = "Well, I think the answer is probably yes, but honestly it depends on many things."
MAX_HANG = 30.0


class RecordedCall(NamedTuple):
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]  # names lower-cased
    json: Any  # the decoded body, or None if it was not JSON


def _rewrite_quotes(content: str | None, change: Callable[[dict[str, Any]], None]) -> str:
    """``content``'s JSON with ``change`` applied to every quote (a stock reply if none)."""
    try:
        obj = json.loads(content or "")
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        obj = {"answer": "The council approved it.", "quotes": [{"passage": 1, "text": ""}]}
    quotes = obj.get("quotes") or [{"passage": 1, "text": ""}]
    for q in quotes:
        change(q)
    obj["quotes"] = quotes
    return json.dumps(obj)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging handler never blocks interpreter exit
    owner: OpenAICompatServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        owner._record(
            RecordedCall(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        )
        try:
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(
                    404, {"error": {"message": "not found", "type": "invalid_request_error"}}
                )
            elif not isinstance(body, dict):
                self._send(
                    400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}}
                )
            else:
                self._respond(owner, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeout)

    def _respond(self, owner: OpenAICompatServer, body: dict[str, Any]) -> None:
        mode = owner.mode
        if mode == "http_500":
            self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
            return
        if mode == "garbage_body":
            self._send_raw(200, b"<html>502 Bad Gateway</html>", "text/html")
            return
        if mode == "hang" and owner._stopping.wait(min(owner.hang_seconds, MAX_HANG)):
            self.close_connection = True
            return
        self._send(200, owner._completion(body, owner._content(body)))

    def _send(self, status: int, obj: Any) -> None:
        self._send_raw(status, json.dumps(obj).encode("utf-8"), "application/json")

    def _send_raw(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class OpenAICompatServer(ServerLifecycle):
    """Threaded chat-completions server on 127.0.0.1 whose replies the test scripts."""

    reply: Reply | None = None
    mode: Mode = "ok"
    hang_seconds: float = 10.0
    wrong_passage: int = 7
    invented: str = INVENTED
    requests: list[RecordedCall] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    _server: _Server | None = field(default=None, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    # -- lifecycle ---------------------------------------------------------

    def _make_server(self) -> _Server:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        return server

    # -- addresses -----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as its base URL (".../v1")."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- inspection ----------------------------------------------------------

    def user_message(self, i: int = -1) -> str:
        """The user message of the ``i``-th recorded request."""
        messages = self.requests[i].json["messages"]
        return next(m["content"] for m in messages if m["role"] == "user")

    # -- behaviour -----------------------------------------------------------

    def _record(self, call: RecordedCall) -> None:
        with self._lock:
            self.requests.append(call)

    def _scripted(self, body: dict[str, Any]) -> str | None:
        return self.reply(body) if self.reply is not None else ABSTAIN

    def _content(self, body: dict[str, Any]) -> str | None:
        if self.mode == "garbage":
            return GARBAGE
        if self.mode == "invents_quotes":
            return _rewrite_quotes(self._scripted(body), lambda q: q.update(text=self.invented))
        if self.mode == "wrong_passage":
            return _rewrite_quotes(
                self._scripted(body), lambda q: q.update(passage=self.wrong_passage)
            )
        return self._scripted(body)

    @staticmethod
    def _completion(body: dict[str, Any], content: str | None) -> dict[str, Any]:
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        completion = len((content or "").split())
        return {
            "id": f"chatcmpl-test-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
