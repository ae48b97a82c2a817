"""One fuzz run: its settings (``FuzzConfig``) and results (``FuzzReport``), the data
directory and the bot process, paced injection, waiting until the bot is done, the canary
question and the checks (``run_fuzz``)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.fuzzing.builders import Injected
from benchmarks.fuzzing.checks import (
    LogFinding,
    SendProblem,
    admin_reports,
    check_sends,
    longest_gap,
    scan_log,
)
from benchmarks.fuzzing.server import FuzzBotApi, closed_loopback_ports
from benchmarks.fuzzing.updates import UpdateFuzzer
from benchmarks.fuzzing.world import (
    ADMIN_CHAT,
    ADMIN_IDS,
    CANARY_QUESTION,
    CANARY_USER,
    NEWSBOT,
    SAMPLES,
)
from tests.bot_process import BotProcess


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


def _cpu_model() -> str:
    """``grep -m1 'model name' /proc/cpuinfo``, or the platform's name for the processor."""
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or "unknown CPU"


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
