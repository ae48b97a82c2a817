"""Fuzz the real bot process with hostile Telegram updates and check that it holds.

The floor of the hardening issue: N fuzzed updates (default 10,000) through the real
``newsbot run`` process: 0 crashes, 0 tracebacks to users, every reply valid Telegram HTML
within 4096 UTF-16 units.

What runs: the fake Bot API server (``tests/fake_bot_api.py``) in this process on 127.0.0.1,
and the bot (``tests/bot_process.py``) on a fresh temporary data directory holding the sample
corpus (``corpus/samples``, ingested with ``newsbot ingest``). The bot uses the hash embedder
(``NEWSBOT_MODEL=hash``) and no span reader (``NEWSBOT_READER_WEIGHTS=off``: the shipped reader
needs the MiniLM base model and torch, ~5 s to start and ~60 ms a question, and the reader
only decides whether a bold short answer heads the quotes; rendering, splitting and every
handler are the same). Two admin ids and an admin chat are set, so admin commands and the
error handler's admin report are exercised too.

What is sent, from a seeded RNG (``--seed``; the choices repeat exactly, the bot messages
that buttons are pressed on depend on the bot's replies): private, group, supergroup and
channel messages; every bot command with random arguments (``/addfeed`` and ``/ingest`` URLs
point only at closed ports of 127.0.0.1, which are allow-listed so fetches really try);
questions from the sample questions; random unicode (emoji, RTL and bidi controls,
combining marks, NUL, U+2028, noncharacters, lone surrogates as JSON allows them); HTML and
Markdown debris; runs that make naive regexes backtrack; texts up to 100 KB; entities with
wrong offsets and unknown types; unknown fields; edited messages and channel posts; callback
queries with forged data (random strings, ``more:`` with random keys, other chats' keys,
inaccessible and inline messages); ``my_chat_member``/``chat_member`` changes; update types
the bot did not ask for and types Telegram might add; from users, bot admins, group admins,
anonymous admins (``sender_chat``) and linked channels. Every raw update is first parsed with
python-telegram-bot's ``Update.de_json`` (an update Telegram could not send would stall any
bot's polling loop, which is not what this measures).

Pacing: at most ``--rate`` updates a second and at most ``--window`` updates waiting at the
server; injection stops after ``--max-seconds``. Then the script waits (at most
``--drain-seconds``) until the bot has fetched every update and made no request for
``--quiet-seconds``, asks a canary question, stops the bot and checks:

* the process was alive at the end and answered the canary;
* no message to a user (admin chat excepted) contains "Traceback" or "Exception";
* every ``sendMessage``/``editMessageText`` the bot made parses as Telegram HTML (per
  ``tests/fake_bot_api_html.py``), is not empty and is at most 4096 UTF-16 units;
* findings, not failures: 4xx answers the server gave the bot, ERROR/CRITICAL lines in the
  bot log (grouped, with the update that caused them when the admin report names it),
  reply latency, and the longest gap between the bot's requests while it had work.

All traffic stays on 127.0.0.1; every wait is bounded; the bot is stopped at the end
(SIGINT, then kill) and the temporary data directory removed (``--keep`` keeps it).

    .venv/bin/python benchmarks/fuzz_updates.py [--updates 10000] [--seed 1] [--max-seconds 1200]

Exit status 0 when every check passes, 1 otherwise. ``tests/test_fuzz_slice.py`` runs a
bounded slice of the same code in CI.
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram import Update  # noqa: E402

from tests import fake_bot_api_html as tg_html  # noqa: E402
from tests.bot_process import BotProcess  # noqa: E402
from tests.fake_bot_api import FakeBotApi  # noqa: E402

JSON = dict[str, Any]
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "corpus" / "samples"
SAMPLE_QUESTIONS = ROOT / "tests" / "fixtures" / "sample_questions.jsonl"
NEWSBOT = Path(sys.executable).parent / "newsbot"

MAX_UTF16 = 4096
BOT_USERNAME = "newsbot_test_bot"
ADMIN_IDS = (4242, 4343)
ADMIN_CHAT = -1009990001  # the error handler reports here; tracebacks are allowed there
CANARY_USER = 777_000_001
CANARY_QUESTION = "who signed with Zolotov?"
ANON_ADMIN = {  # Telegram's sender of messages by anonymous group admins
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
TELEGRAM_SERVICE = {"id": 777000, "is_bot": False, "first_name": "Telegram"}  # linked channels
USERS = range(1001, 1401)  # ordinary users (the per-user rate limit applies: 10 a minute)
GROUPS = 120  # groups and supergroups; many, so PTB's 20-a-minute group limit rarely bites
CHANNELS = 60
HOT, HOT_SHARE = 3, 0.4  # 40% of the traffic goes to the first 3 users, groups and channels
FORBIDDEN_WORDS = ("Traceback", "Exception")  # never in a message to a user
_FORBIDDEN_RE = re.compile("|".join(FORBIDDEN_WORDS), re.IGNORECASE)
# Update keys python-telegram-bot 22 does not know; Telegram adds types now and then.
UNKNOWN_KINDS = tuple(
    "future_update story_reaction paid_reaction_count topic_update_v2 x_new".split()
)

COMMANDS = tuple(
    "start help about ask follow following unfollow digest reindex ingest stats delete"
    " addfeed feeds removefeed addchannel approvechannel removechannel".split()
)
# /reindex re-embeds the whole corpus: keep it rare, as an admin would.
COMMAND_WEIGHTS = {"ask": 10, "follow": 6, "reindex": 0.15, "start": 1, "help": 1}

# ------------------------------------------------------------------------------ text pools
EMOJI = "😀 👨‍👩‍👧‍👦 🇺🇦 🏳️‍🌈 👍🏽 🫠 ©️ 1️⃣ 𝕳𝖊𝖑𝖑𝖔 🧑🏿‍🚀 \U0001f9ea".split()
RTL = [
    "مرحبا بالعالم",
    "שלום עולם",
    "\u202eevil\u202c",
    "\u200f",
    "\u061c",
    "أخبار روسيا وإيران",
    "\u2067isolate\u2069",
]
SPECIAL = [
    "\x00",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\u200b",
    "\u200d",
    "\ufffd",
    "\uffff",
    "\ufffe",
    "\r\n",
    "\t",
    "\x1b[31m",
    "\x7f",
    "\U000e0041",
    "\ufe0f",
    "\u00ad",
    "\u3000",
    "\u00a0",
    "\U0010ffff",
    "\x85",
]
LONE_SURROGATES = ["\ud800", "\udfff", "\udc00\ud800", "\ud83d"]
HTML_DEBRIS = [
    "<b>",
    "</b>",
    "<i>x",
    "&",
    "&amp;",
    "&lt;",
    "&#0;",
    "&#x110000;",
    '<a href="javascript:alert(1)">x</a>',
    "<blockquote expandable>",
    "</blockquote>",
    '<pre><code class="language-py">',
    "<tg-spoiler>",
    "<script>",
    "<!-- -->",
    "<",
    ">",
    "\"'",
    "<br/>",
    "</>",
    '<a href="tg://user?id=1">',
]
MARKDOWN_DEBRIS = ["*bold*", "_it_", "`code`", "```", "[x](http://127.0.0.1:1/)", "~~", "||s||"]
# Units whose long repetitions make naive regexes backtrack or tokenizers choke.
HOSTILE_UNITS = [
    "a",
    ".",
    "!",
    " ",
    "\n",
    "(",
    "[",
    "@",
    "/",
    "http://",
    "1",
    "-",
    "'",
    ",",
    "?",
    "aa.",
    "a ",
    "2023-",
    "who ",
    "Mr. ",
    "«",
    "…",
    "—",
    "__",
    "**",
    "\\",
    "\u00a0",
    "@a",
    "1.",
    "x=",
    "&#",
    "<a ",
    "0:",
]


def bot_commands() -> tuple[str, ...]:
    """``COMMANDS`` plus any command the bot's menus name that this list does not know yet
    (read from ``bot.telegram.app``), so new commands are fuzzed without editing this file."""
    try:
        from bot.telegram.app import ADMIN_COMMANDS, READER_COMMANDS
    except Exception:  # a tree that does not import is reported by the bot's start
        return COMMANDS
    named = {c.command for c in [*READER_COMMANDS, *ADMIN_COMMANDS]}
    return COMMANDS + tuple(sorted(named - set(COMMANDS)))


def _utf16_len(text: str) -> int:
    """UTF-16 code units, also for texts holding lone surrogates (as Telegram's JSON allows)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _cpu_model() -> str:
    """``grep -m1 'model name' /proc/cpuinfo``, or the platform's name for the processor."""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or "unknown CPU"


def closed_loopback_ports(count: int = 3) -> list[int]:
    """Ports of 127.0.0.1 that refuse connections right now (bound, released, checked)."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) != 0 and port not in ports:
                ports.append(port)
    return ports


class FuzzBotApi(FakeBotApi):
    """The fake server, also remembering the update each control call enqueued and the
    offset the bot last confirmed (read in O(1), not by scanning thousands of calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.last_enqueued: JSON | None = None
        self.confirmed = 0  # every update_id up to this one has been fetched by the bot

    def _enqueue(self, kind: str, obj: JSON) -> JSON:
        update = super()._enqueue(kind, obj)  # called with the server's lock held
        self.last_enqueued = update
        return update

    def _get_updates(self, params: JSON) -> list[JSON]:
        offset = int(params.get("offset") or 0)
        if offset > 0:
            self.confirmed = max(self.confirmed, offset - 1)
        return super()._get_updates(params)


# ------------------------------------------------------------------------------ texts
class TextFuzz:
    """Random texts: questions and corpus words, unicode, debris, hostile runs, up to 100 KB."""

    def __init__(self, rng: random.Random, max_chars: int = 100_000) -> None:
        self.rng = rng
        self.max_chars = max_chars
        words: list[str] = []
        for path in sorted(SAMPLES.glob("*.txt")):
            words.extend(path.read_text(encoding="utf-8").split())
        self.words = words or ["news"]
        rows = [
            json.loads(line)
            for line in SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        self.questions = [r["question"] for r in rows]
        self.quotes = [r["quote"] for r in rows if r.get("quote")] or self.questions
        # Made-up words put in padded posts; questions name them, so answers quote the posts.
        self.nonces: deque[str] = deque(maxlen=40)

    def length(self) -> int:
        """Mostly chat-sized; sometimes long; 3% up to ``max_chars``."""
        r = self.rng.random()
        if r < 0.70:
            top = 80
        elif r < 0.90:
            top = 600
        elif r < 0.97:
            top = 5000
        else:
            top = self.max_chars
        return self.rng.randint(1, min(top, self.max_chars))

    def question(self) -> str:
        """A sample question, sometimes decorated."""
        q = self.rng.choice(self.questions)
        if self.nonces and self.rng.random() < 0.3:
            nonce = self.rng.choice(self.nonces)
            q = self.rng.choice([f"Who is {nonce}?", f"What did {nonce} sign?", f"{nonce} {q}"])
        r = self.rng.random()
        if r < 0.2:
            q = q.upper()
        elif r < 0.35:
            q = f"{self.rng.choice(EMOJI)} {q} {self.rng.choice(RTL)}"
        elif r < 0.45:
            q = q + self.rng.choice(HOSTILE_UNITS) * self.rng.randint(1, 400)
        return q

    def piece(self, allow_surrogates: bool = False) -> str:
        """One short random piece."""
        pools: list[tuple[float, Callable[[], str]]] = [
            (4, lambda: " ".join(self.rng.choices(self.words, k=self.rng.randint(1, 8)))),
            (2, lambda: self.rng.choice(EMOJI)),
            (1.5, lambda: self.rng.choice(RTL)),
            (
                1,
                lambda: (
                    "e"
                    + "".join(
                        chr(self.rng.randint(0x300, 0x36F)) for _ in range(self.rng.randint(1, 30))
                    )
                ),
            ),
            (1.5, lambda: self.rng.choice(SPECIAL)),
            (1.5, lambda: self.rng.choice(HTML_DEBRIS)),
            (0.7, lambda: self.rng.choice(MARKDOWN_DEBRIS)),
            (
                1,
                lambda: chr(
                    self.rng.choice(
                        [self.rng.randint(0x20, 0xD7FF), self.rng.randint(0xE000, 0x10FFFF)]
                    )
                ),
            ),
            (0.5, lambda: f"@{BOT_USERNAME}"),
            (0.5, lambda: "/" + self.rng.choice(COMMANDS)),
        ]
        if allow_surrogates:
            pools.append((1, lambda: self.rng.choice(LONE_SURROGATES)))
        weights = [w for w, _ in pools]
        return self.rng.choices([f for _, f in pools], weights=weights)[0]()

    def text(self, *, allow_surrogates: bool = True, min_chars: int = 0) -> str:
        """A random message text."""
        n = max(min_chars, self.length())
        r = self.rng.random()
        if r < 0.30:
            out = self.question()
        elif r < 0.42:
            out = " ".join(self.rng.choices(self.words, k=max(1, n // 7)))
        elif r < 0.72:
            parts: list[str] = []
            size = 0
            surrogates = allow_surrogates and self.rng.random() < 0.1
            while size < n:
                part = self.piece(surrogates)
                parts.append(part)
                size += len(part) + 1
            out = " ".join(parts)
        elif r < 0.84:
            unit = self.rng.choice(HOSTILE_UNITS)
            prefix = self.question() + " " if self.rng.random() < 0.5 else ""
            out = prefix + unit * max(1, n // len(unit))
        elif r < 0.94:
            out = "".join(
                self.rng.choice(HTML_DEBRIS + MARKDOWN_DEBRIS + self.words[:50])
                for _ in range(max(1, n // 6))
            )
        else:
            out = self.rng.choice(["", " ", "\u200b", "\n\n", "\x00", "\ufeff", "ㅤ", "."])
        out = out[: self.max_chars]
        return _FORBIDDEN_RE.sub("x", out)  # a user's own word echoed back is no finding

    def quotable(self) -> str:
        """A sample article's sentence padded with emoji, CJK, RTL and HTML debris.

        The sample questions retrieve it, so answers quote it back: long in UTF-16 units
        (an emoji counts two), full of things to escape, with few places to split.
        """
        rng = self.rng
        words = rng.choice(self.quotes).split()
        nonce = f"Velmora{rng.randint(0, 10**6)}"
        self.nonces.append(nonce)
        words.insert(rng.randint(0, len(words)), nonce)
        quote = " ".join(words)
        pad = rng.choice(["😀", "👨‍👩‍👧‍👦", "𝕳", "中文", "مرحبا", "<b>&amp;", "&", "\u0301", "🇺🇦 "])
        n = rng.randint(100, 2500)
        layout = rng.random()
        if layout < 0.4:  # one endless sentence holding the quote
            text = f"{quote.rstrip('.')} {pad * n}."
        elif layout < 0.7:  # the quote's words spread out between padding
            text = f" {pad * rng.randint(1, 40)} ".join(quote.split())
        else:  # paragraphs of padding around the quote
            text = f"{pad * n}\n\n{quote}\n\n{pad * n}"
        title = self.short(rng.choice([20, 200]))
        return _FORBIDDEN_RE.sub("x", f"{title}\n{text}")[: self.max_chars]

    def short(self, max_chars: int = 64, *, allow_surrogates: bool = False) -> str:
        """A short hostile string: names, titles, arguments."""
        parts = [self.piece(allow_surrogates) for _ in range(self.rng.randint(1, 4))]
        return _FORBIDDEN_RE.sub("x", " ".join(parts))[:max_chars] or "x"


# ------------------------------------------------------------------------------ updates
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


class UpdateFuzzer:
    """Generates and injects one random update per ``step()`` through the fake server."""

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
        self.actions: list[tuple[float, Callable[[], bool]]] = [
            (13, self.private_text),
            (17, self.private_command),
            (10, self.group_command),
            (5, self.group_mention),
            (4, self.group_reply_to_bot),
            (4, self.group_chatter),
            (6, self.channel_command),
            (8, self.channel_post),
            (5, self.edited_message),
            (3, self.edited_channel_post),
            (9, self.callback_forged),
            (2, self.callback_raw),
            (2, self.member_update),
            (4, self.unknown_update),
            (2, self.unsubscribed_update),
            (4, self.weird_message),
        ]

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

    def _entities(self, text: str, wrong: bool) -> list[JSON]:
        """What Telegram would detect, or (``wrong``) entities with broken offsets and types."""
        try:
            entities = tg_html.auto_entities(text)
        except UnicodeEncodeError:  # lone surrogates: only a leading command, like Telegram
            match = re.match(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,32})?", text)
            entities = (
                [{"type": "bot_command", "offset": 0, "length": _utf16_len(match.group(0))}]
                if match
                else []
            )
        if not wrong:
            return entities
        rng, n = self.rng, _utf16_len(text)
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
        plain = not raw and not kw and not _has_lone_surrogate(text) and self.rng.random() < 0.6
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
        if not _has_lone_surrogate(new_text) and self.rng.random() < 0.6:
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
        if not _has_lone_surrogate(new_text) and self.rng.random() < 0.6:
            return self._control(
                "edited channel post",
                lambda: self.api.edited_channel_post(chat_id, message_id, new_text),
            )
        key = "caption" if "caption" in original else "text"
        original.update({key: new_text, "edit_date": int(time.time())})
        original.pop("entities", None)
        original.pop("caption_entities", None)
        return self._send_raw({"edited_channel_post": original}, "edited channel post")

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

    def warm_up(self) -> None:
        """The busiest channels ask to be sources and a bot admin accepts them, so their
        posts become articles that answers quote from the start (6 updates of the run)."""
        admin = {"id": ADMIN_IDS[0], "is_bot": False, "first_name": "Admin"}
        for channel in self.channels[:HOT]:
            self._text_message("channel command", channel, "/addchannel", None)
        for channel in self.channels[:HOT]:
            text = f"/approvechannel {channel['id']}"
            self._text_message("private command", self._private_chat(admin), text, admin)

    def step(self) -> None:
        """Inject one random update (retrying with another action if one could not)."""
        weights = [w for w, _ in self.actions]
        for _ in range(10):
            action = self.rng.choices([a for _, a in self.actions], weights=weights)[0]
            if action():
                return


# ------------------------------------------------------------------------------ checks
@dataclass
class SendProblem:
    """A message the bot sent that breaks a rule, and the update it answered (if known)."""

    rule: str
    method: str
    chat_id: Any
    detail: str
    text: str
    update: str = ""


@dataclass
class LogFinding:
    """One kind of ERROR/CRITICAL log record: how often, and an example with its traceback."""

    level: str
    message: str
    exception: str
    where: str = ""  # the innermost frame in newsbot's own code
    count: int = 0
    example: str = ""


@dataclass
class FuzzConfig:
    """How much to send, how fast, and how long to wait."""

    updates: int = 10_000
    seed: int = 1
    max_seconds: float = 1200.0
    drain_seconds: float = 300.0
    quiet_seconds: float = 8.0
    rate: float = 30.0  # PTB's AIORateLimiter sends ~30 a second: no growing backlog
    window: int = 200
    start_timeout: float = 120.0
    canary_timeout: float = 60.0
    keep: Path | None = None
    progress: bool = True


@dataclass
class FuzzReport:
    """Everything the run measured; ``failures()`` lists the checks that failed."""

    cpu: str
    config: FuzzConfig
    injected: Injected = field(default_factory=Injected)
    inject_seconds: float = 0.0
    total_seconds: float = 0.0
    drained: bool = False
    alive: bool = False
    canary_reply: str | None = None
    canary_seconds: float | None = None
    exit_code: int | None = None
    sends: int = 0
    send_problems: list[SendProblem] = field(default_factory=list)
    tracebacks_to_users: list[SendProblem] = field(default_factory=list)
    long_callback_answers: int = 0
    sorry_replies: int = 0  # "something went wrong": the error handler answered a user
    status_4xx: Counter = field(default_factory=Counter)
    calls_by_method: Counter = field(default_factory=Counter)
    log_findings: list[LogFinding] = field(default_factory=list)
    admin_reports: list[tuple[str, int, str]] = field(default_factory=list)  # exc, count, update
    warnings: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    slowest: tuple[float, str] = (0.0, "")
    longest_gap: tuple[float, str] = (0.0, "")
    longest_reply: tuple[int, str] = (0, "")  # UTF-16 units, text
    log_tail: str = ""

    @property
    def error_lines(self) -> int:
        """ERROR/CRITICAL records in the bot's log."""
        return sum(f.count for f in self.log_findings)

    def failures(self) -> list[str]:
        """The failed checks, in words (empty: the floor holds)."""
        out = []
        if not self.alive:
            out.append("the bot process died")
        if self.canary_reply is None:
            out.append("no reply to the canary question")
        if self.tracebacks_to_users:
            out.append(f"{len(self.tracebacks_to_users)} message(s) to users show a traceback")
        rules = Counter(p.rule for p in self.send_problems)
        for rule, count in sorted(rules.items()):
            out.append(f"{count} message(s): {rule}")
        if not self.drained:
            out.append("the bot did not finish the updates in time")
        return out


def _trim(text: str, n: int = 200) -> str:
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= n else f"{text[:n]}…(+{len(text) - n})"


def check_message_text(text: Any, parse_mode: Any) -> tuple[str, str] | None:
    """Why Telegram would refuse this message text, as (rule, detail); None if it is fine."""
    return measure_message_text(text, parse_mode)[1]


def measure_message_text(text: Any, parse_mode: Any) -> tuple[int, tuple[str, str] | None]:
    """The text's length in UTF-16 units as Telegram counts it (after entity parsing and
    trimming; 0 if it cannot be parsed), and why Telegram would refuse it (None: fine)."""
    if not isinstance(text, str):
        return 0, ("empty text", repr(text)[:80])
    html_mode = str(parse_mode or "").lower() == "html"
    try:
        plain, entities = tg_html.parse_html(text) if html_mode else (text, [])
        plain, _ = tg_html.strip_text(plain, entities)
    except tg_html.HtmlParseError as err:
        return 0, ("invalid Telegram HTML", str(err))
    except Exception as err:  # e.g. a lone surrogate reaching the check
        return 0, ("invalid Telegram HTML", f"{type(err).__name__}: {err}")
    if not plain:
        return 0, ("empty text", "nothing left after parsing and trimming")
    length = _utf16_len(plain)
    if length > MAX_UTF16:
        return length, (f"longer than {MAX_UTF16} UTF-16 units", f"{length} units")
    return length, None


def check_sends(api: FuzzBotApi, injected: Injected, report: FuzzReport) -> None:
    """Apply the message rules to every sendMessage/editMessageText the bot made."""
    for call in api.calls():
        report.calls_by_method[call.method] += 1
        if call.status and 400 <= call.status < 500:
            description = re.sub(r"\d+", "N", str(call.response))[:90]
            report.status_4xx[(call.method, call.status, description)] += 1
        if call.method == "answerCallbackQuery":
            text = call.params.get("text")
            if isinstance(text, str) and len(text) > 200:
                report.long_callback_answers += 1
            continue
        if call.method not in ("sendMessage", "editMessageText"):
            continue
        report.sends += 1
        params, chat_id = call.params, call.params.get("chat_id")
        text = params.get("text")
        reply = params.get("reply_parameters")
        reply = reply if isinstance(reply, dict) else {}  # the server decodes it to a dict
        key = None
        with suppress(TypeError, ValueError):
            key = (int(str(chat_id)), int(reply.get("message_id") or params.get("message_id") or 0))
        source = injected.by_message.get(key) if key else None
        if source and call.method == "sendMessage" and reply:
            report.latencies.append(call.time - source[1])
            if call.time - source[1] > report.slowest[0]:
                report.slowest = (call.time - source[1], injected.summaries.get(source[0], ""))
        update = injected.summaries.get(source[0], "") if source else ""
        if isinstance(text, str) and "went wrong" in text:
            report.sorry_replies += 1
        length, problem = measure_message_text(text, params.get("parse_mode"))
        if length > report.longest_reply[0]:
            report.longest_reply = (length, _trim(str(text), 120))
        if problem:
            report.send_problems.append(
                SendProblem(problem[0], call.method, chat_id, problem[1], _trim(str(text)), update)
            )
        if str(chat_id) != str(ADMIN_CHAT) and isinstance(text, str) and _FORBIDDEN_RE.search(text):
            report.tracebacks_to_users.append(
                SendProblem(
                    "traceback to a user", call.method, chat_id, "", _trim(text, 400), update
                )
            )


def longest_gap(api: FuzzBotApi, start: float, end: float) -> tuple[float, str]:
    """The longest time without any request from the bot while it had updates to handle."""
    times = sorted(c.time for c in api.calls() if start <= c.time <= end)
    best, where = 0.0, ""
    for a, b in zip(times, times[1:], strict=False):
        if b - a > best:
            best, where = b - a, datetime.fromtimestamp(a, UTC).strftime("%H:%M:%S")
    return best, where


_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (\w+) (\S+): (.*)$")
_FRAME = re.compile(r'File "[^"]*?/((?:bot|corpus|embeddings)/[^"]+)", line (\d+), in (\S+)')


def scan_log(text: str) -> tuple[list[LogFinding], Counter]:
    """ERROR/CRITICAL records (grouped by message and exception) and WARNING messages."""
    findings: dict[tuple[str, str, str, str], LogFinding] = {}
    warnings: Counter = Counter()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _LOG_LINE.match(lines[i])
        i += 1
        if not match:
            continue
        level, logger, message = match.groups()
        if level == "WARNING":
            warnings[f"{logger}: {re.sub(r'[0-9]+', 'N', message)[:110]}"] += 1
            continue
        if level not in ("ERROR", "CRITICAL"):
            continue
        trace: list[str] = []
        while i < len(lines) and not _LOG_LINE.match(lines[i]):
            trace.append(lines[i])
            i += 1
        exception = next((t for t in reversed(trace) if t.strip() and not t.startswith(" ")), "")
        normalized = re.sub(r"[0-9]+", "N", exception)[:160]
        frames = [m for t in trace if (m := _FRAME.search(t)) and "site-packages" not in t]
        where = (
            f"{frames[-1].group(1)}:{frames[-1].group(2)} {frames[-1].group(3)}" if frames else ""
        )
        key = (level, f"{logger}: {message[:120]}", normalized, where)
        finding = findings.setdefault(key, LogFinding(level, key[1], normalized, where))
        finding.count += 1
        if not finding.example:
            finding.example = "\n".join(trace[-12:])
    return sorted(findings.values(), key=lambda f: -f.count), warnings


def admin_reports(api: FuzzBotApi) -> list[tuple[str, int, str]]:
    """The error handler's reports in the admin chat: (exception line, count, update JSON)."""
    grouped: dict[str, list[Any]] = {}
    for call in api.calls("sendMessage"):
        if str(call.params.get("chat_id")) != str(ADMIN_CHAT):
            continue
        blocks = re.findall(r"<pre>(.*?)</pre>", str(call.params.get("text")), re.S)
        if not blocks:
            continue
        trace = html.unescape(blocks[0]).strip().splitlines()
        exception = re.sub(r"[0-9]+", "N", trace[-1] if trace else "?")[:160]
        where = html.unescape(blocks[1]) if len(blocks) > 1 else ""
        entry = grouped.setdefault(exception, [0, where])
        entry[0] += 1
    return sorted(((k, v[0], v[1]) for k, v in grouped.items()), key=lambda r: -r[1])


# ------------------------------------------------------------------------------ the run
def prepare_data_dir(data: Path) -> None:
    """A data directory with the sample corpus ingested and indexed by the hash embedder."""
    env = {"NEWSBOT_DATA_DIR": str(data), "NEWSBOT_MODEL": "hash", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [str(NEWSBOT), "ingest", str(SAMPLES)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"newsbot ingest failed:\n{result.stderr[-2000:]}")


class FuzzBot(BotProcess):
    """``BotProcess`` whose start fails at once, with the log, when the process exits early."""

    def start(self, *args: str, timeout: float = 60) -> None:
        """Start ``newsbot run ARGS``; wait until it polls for updates."""
        polls = len(self.api.calls("getUpdates"))
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [str(NEWSBOT), "run", *args], env=self.env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while len(self.api.calls("getUpdates")) <= polls:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"newsbot run exited ({self.proc.returncode}):\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"newsbot run did not poll in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)


@contextmanager
def bot_running(
    api: FuzzBotApi, data: Path, ports: list[int], start_timeout: float
) -> Iterator[BotProcess]:
    """The real ``newsbot run`` on ``data``; stopped (SIGINT, then kill) on the way out."""
    allow = ",".join([*(f"127.0.0.1:{p}" for p in ports), *(f"[::1]:{p}" for p in ports)])
    process = FuzzBot(
        api,
        data,
        model="hash",
        reader_weights="off",
        admin_ids=",".join(str(a) for a in ADMIN_IDS),
        admin_chat_id=str(ADMIN_CHAT),
        url_allowlist=allow,
        feed_check_seconds="5",  # feeds added by /addfeed are polled during the run
        fetch_timeout="3",
    )
    process.env["HF_HUB_OFFLINE"] = "1"
    process.start(timeout=start_timeout)
    try:
        yield process
    finally:
        process.stop()


def _last_request_time(api: FuzzBotApi) -> float:
    calls = [c for c in api.calls()[-200:] if c.method != "getUpdates"]
    return calls[-1].time if calls else 0.0


def wait_drained(api: FuzzBotApi, last_update_id: int, quiet: float, timeout: float) -> bool:
    """Until the bot confirmed every update and made no other request for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        caught_up = api.confirmed >= last_update_id
        if caught_up and time.time() - max(_last_request_time(api), 0) >= quiet:
            return True
        time.sleep(0.25)
    return False


def inject(fuzzer: UpdateFuzzer, cfg: FuzzConfig) -> float:
    """Send ``cfg.updates`` updates at most ``cfg.rate`` a second, at most ``cfg.window``
    waiting at the server, for at most ``cfg.max_seconds``; returns the seconds it took."""
    api, out = fuzzer.api, fuzzer.out
    start = time.monotonic()
    fuzzer.warm_up()
    next_at = start
    last_progress = start
    while out.count < cfg.updates:
        now = time.monotonic()
        if now - start > cfg.max_seconds:
            print(f"fuzz: --max-seconds reached after {out.count} updates", file=sys.stderr)
            break
        if out.last_update_id - api.confirmed >= cfg.window:
            time.sleep(0.02)
            continue
        if now < next_at:
            time.sleep(min(0.05, next_at - now))
            continue
        next_at = max(next_at + 1.0 / cfg.rate, now - 1.0)
        fuzzer.step()
        if cfg.progress and now - last_progress > 15:
            last_progress = now
            print(
                f"fuzz: {out.count}/{cfg.updates} updates, bot confirmed {api.confirmed}"
                f", {len(api.calls())} requests so far",
                file=sys.stderr,
            )
    return time.monotonic() - start


def run_fuzz(cfg: FuzzConfig) -> FuzzReport:
    """Start server and bot, send the fuzzed updates, wait, ask the canary, stop, check."""
    report = FuzzReport(cpu=_cpu_model(), config=cfg)
    work = Path(tempfile.mkdtemp(prefix="newsbot-fuzz-"))
    data = cfg.keep or work / "data"
    data.mkdir(parents=True, exist_ok=True)
    try:
        prepare_data_dir(data)
        ports = closed_loopback_ports()
        api = FuzzBotApi()
        with api, bot_running(api, data, ports, cfg.start_timeout) as bot:
            fuzzer = UpdateFuzzer(api, random.Random(cfg.seed), ports)
            report.injected = fuzzer.out
            begin = time.time()
            report.inject_seconds = inject(fuzzer, cfg)
            report.drained = wait_drained(
                api, fuzzer.out.last_update_id, cfg.quiet_seconds, cfg.drain_seconds
            )
            report.total_seconds = time.time() - begin
            report.longest_gap = longest_gap(api, begin, _last_request_time(api))
            report.alive = bot.proc is not None and bot.proc.poll() is None
            if report.alive:
                asked = time.time()
                with suppress(AssertionError):
                    api.private_message(CANARY_USER, CANARY_QUESTION)
                    reply = api.wait_for_message(CANARY_USER, timeout=cfg.canary_timeout)
                    report.canary_reply = reply["text"]
                    report.canary_seconds = time.time() - asked
            report.alive = bot.proc is not None and bot.proc.poll() is None
            report.exit_code = bot.stop()
            check_sends(api, fuzzer.out, report)
            report.admin_reports = admin_reports(api)
            log_text = bot.log.read_text(errors="replace") if bot.log.exists() else ""
            report.log_findings, report.warnings = scan_log(log_text)
            report.log_tail = log_text[-3000:]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return report


# ------------------------------------------------------------------------------ output
def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round((len(ordered) - 1) * p / 100)))]


def print_report(report: FuzzReport, out: Any = sys.stdout) -> None:
    """The checks as a table, then the findings with their reproductions."""
    inj, cfg = report.injected, report.config

    def row(name: str, value: Any, ok: bool | None = None) -> str:
        mark = "" if ok is None else ("ok" if ok else "FAIL")
        return f"  {name:<52} {value!s:>14}  {mark}"

    rate = inj.count / report.total_seconds if report.total_seconds else 0.0
    lat = report.latencies
    p50, p99 = _percentile(lat, 50), _percentile(lat, 99)
    problems = Counter(p.rule for p in report.send_problems)
    lines = [
        f"fuzz_updates: seed {cfg.seed}, {inj.count} updates (asked {cfg.updates})",
        f"cpu: {report.cpu}",
        "",
        row("check", "value", None).replace("  ", "  ", 1),
        row("updates injected", inj.count),
        row("process alive at the end", "yes" if report.alive else "no", report.alive),
        row(
            "canary question answered",
            f"{report.canary_seconds:.2f} s" if report.canary_seconds is not None else "no",
            report.canary_reply is not None,
        ),
        row(
            "all updates handled (offset caught up, quiet)",
            "yes" if report.drained else "no",
            report.drained,
        ),
        row(
            "messages to users with Traceback/Exception",
            len(report.tracebacks_to_users),
            not report.tracebacks_to_users,
        ),
        row("sendMessage + editMessageText checked", report.sends),
        row(
            "  invalid Telegram HTML",
            problems.get("invalid Telegram HTML", 0),
            not problems.get("invalid Telegram HTML"),
        ),
        row(
            f"  longer than {MAX_UTF16} UTF-16 units",
            problems.get(f"longer than {MAX_UTF16} UTF-16 units", 0),
            not problems.get(f"longer than {MAX_UTF16} UTF-16 units"),
        ),
        row("  empty text", problems.get("empty text", 0), not problems.get("empty text")),
        row("4xx answers the server gave the bot", sum(report.status_4xx.values())),
        row("ERROR/CRITICAL lines in the bot log", report.error_lines),
        row("'something went wrong' replies to users", report.sorry_replies),
        row("callback answers over 200 characters", report.long_callback_answers),
        row("longest message the bot sent (UTF-16 units)", report.longest_reply[0]),
        row("updates/s (injection to drained)", f"{rate:.1f}"),
        row("total time, s (injection + drain)", f"{report.total_seconds:.1f}"),
        row("injection time, s", f"{report.inject_seconds:.1f}"),
        row(
            "reply latency p50 / p99, s",
            f"{p50:.2f} / {p99:.2f}" if p50 is not None and p99 is not None else "-",
        ),
        row("longest gap between bot requests, s", f"{report.longest_gap[0]:.2f}"),
        row("bot exit code on SIGINT", report.exit_code),
        "",
        "updates by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(inj.kinds.items())),
        "bot requests: " + ", ".join(f"{k} {v}" for k, v in report.calls_by_method.most_common()),
    ]
    if inj.rejected_by_ptb or inj.control_errors:
        lines.append(
            f"generator: {inj.rejected_by_ptb} updates PTB could not parse were not sent; "
            f"control calls refused: {dict(inj.control_errors)}"
        )
    if report.slowest[1]:
        lines.append(f"slowest reply {report.slowest[0]:.1f} s to: {_trim(report.slowest[1], 400)}")
    if report.longest_gap[0] > 2:
        lines.append(f"longest gap started at {report.longest_gap[1]} UTC")
    failures = report.failures()
    lines += ["", "FAILED: " + "; ".join(failures) if failures else "PASSED: every check holds"]
    if report.send_problems or report.tracebacks_to_users:
        lines.append("\nmessages that break the rules (first 3 of each rule):")
        shown: Counter = Counter()
        for p in report.tracebacks_to_users + report.send_problems:
            shown[p.rule] += 1
            if shown[p.rule] <= 3:
                lines.append(f"- {p.rule} ({p.method} to {p.chat_id}): {p.detail}")
                lines.append(f"    text: {p.text}")
                if p.update:
                    lines.append(f"    answering: {_trim(p.update, 600)}")
    if report.status_4xx:
        lines.append("\n4xx answers (method, status, description: count):")
        for (method, status, desc), n in report.status_4xx.most_common(12):
            lines.append(f"  {method} {status} {desc}: {n}")
    if report.log_findings:
        lines.append("\nERROR/CRITICAL log records (grouped):")
        for f in report.log_findings[:15]:
            lines.append(f"  {f.count:>5} x {f.level} {f.message} | {f.exception}")
            if f.where:
                lines.append(f"          at {f.where}")
    if report.admin_reports:
        lines.append("\nerror handler reports in the admin chat (exception: count, an update):")
        for exc, n, where in report.admin_reports[:15]:
            lines.append(f"  {n:>5} x {exc}\n        update: {_trim(where, 500)}")
    if report.warnings:
        lines.append("\nWARNING log records (top 8):")
        for message, n in report.warnings.most_common(8):
            lines.append(f"  {n:>5} x {message}")
    print("\n".join(lines), file=out, flush=True)


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags (every one has a default)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = FuzzConfig()
    parser.add_argument("--updates", type=int, default=defaults.updates, help="how many (10000)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="RNG seed (1)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=defaults.max_seconds,
        help="stop injecting after this long (1200)",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=defaults.drain_seconds,
        help="then wait at most this long for the bot to finish (300)",
    )
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=defaults.quiet_seconds,
        help="finished = no bot request for this long (8)",
    )
    parser.add_argument(
        "--rate", type=float, default=defaults.rate, help="at most this many updates a second (30)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=defaults.window,
        help="at most this many updates waiting at the server (200)",
    )
    parser.add_argument("--keep", type=Path, help="use (and keep) this data directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the fuzz; exit 1 if a check failed."""
    args = build_parser().parse_args(argv)
    cfg = FuzzConfig(
        updates=args.updates,
        seed=args.seed,
        max_seconds=args.max_seconds,
        drain_seconds=args.drain_seconds,
        quiet_seconds=args.quiet_seconds,
        rate=args.rate,
        window=args.window,
        keep=args.keep,
    )
    report = run_fuzz(cfg)
    print_report(report)
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
