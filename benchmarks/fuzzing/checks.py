"""The checks after a run: the rules for every message the bot sent (valid Telegram HTML,
not empty, within 4096 UTF-16 units, no traceback to a user), 4xx answers, the longest gap
between the bot's requests, ERROR/CRITICAL log records and the error handler's reports."""

from __future__ import annotations

import html
import re
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from benchmarks.fuzzing.builders import Injected
from benchmarks.fuzzing.server import FuzzBotApi
from benchmarks.fuzzing.world import ADMIN_CHAT, FORBIDDEN_RE, MAX_UTF16, utf16_len
from tests import fake_bot_api_html as tg_html

if TYPE_CHECKING:
    from benchmarks.fuzzing.run import FuzzReport


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


def trim(text: str, n: int = 200) -> str:
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
    length = utf16_len(plain)
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
            report.longest_reply = (length, trim(str(text), 120))
        if problem:
            report.send_problems.append(
                SendProblem(problem[0], call.method, chat_id, problem[1], trim(str(text)), update)
            )
        if str(chat_id) != str(ADMIN_CHAT) and isinstance(text, str) and FORBIDDEN_RE.search(text):
            report.tracebacks_to_users.append(
                SendProblem(
                    "traceback to a user", call.method, chat_id, "", trim(text, 400), update
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
