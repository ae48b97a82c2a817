"""Telegram round trip: from a user's message reaching the Bot API server to the bot's reply.

Starts the real ``newsbot run`` process against the local fake Bot API server
(``tests/fake_bot_api.py``, in this process, on 127.0.0.1) and asks questions in private
chats, one at a time, each from a new user id (so the per-user rate limit never applies;
``NEWSBOT_USER_RATE_PER_MINUTE`` is set high as well). Per question the latency is the time
from the update being enqueued at the server (what ``FakeBotApi.private_message`` does) to
the server receiving the bot's first ``sendMessage`` for that chat: long-poll delivery,
dispatch, the ``typing`` chat action, the answer engine, rendering and the send. The split
at the ``sendChatAction`` call is printed too.

Two corpora, each in its own bot process with its own data directory:

(a) sample: ``corpus/samples`` ingested with ``newsbot ingest`` into a temporary data
    directory; questions: a seeded mix of ``tests/fixtures/sample_questions.jsonl``
    (cycled when ``--n`` exceeds them).
(b) dev: a copy of the RealTime QA data directory that ``benchmarks/retrieval.py`` caches
    (``common.default_cache_dir("realtimeqa", ())``); questions: the question sentences of
    ``../shared/data/realtimeqa-2023q1/*_qa.jsonl`` in a seeded order (as of "now": the bot
    has no notion of the question date). When the cached directory is missing, (b) is
    skipped with a message, or built first with ``--build-dev`` (runs retrieval.py once:
    ingest plus embedding, ~10+ minutes). Without ``../shared/data`` (b) is skipped and the
    script still exits 0.

Each bot first answers 5 warm-up questions (not measured). Every wait is bounded
(``--timeout`` per question, ``--start-timeout`` for the bot to start polling); the bot
is always stopped at the end (SIGINT, then kill). Data directories are temporary and
removed afterwards.

    .venv/bin/python benchmarks/telegram_roundtrip.py [--n 100] [--only sample|dev]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common

WARMUP = 5
FLOOR_MS = 100.0
ADMIN_ID = 4242
SAMPLE_USERS = 1_000_000  # user ids: base + i, distinct per question and corpus
DEV_USERS = 2_000_000
SAMPLE_QUESTIONS = common.REPO_ROOT / "tests" / "fixtures" / "sample_questions.jsonl"
SAMPLE_CORPUS = common.REPO_ROOT / "corpus" / "samples"
NEWSBOT = Path(sys.executable).parent / "newsbot"
SEED = 20230101


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100, help="questions per corpus (default 100)")
    parser.add_argument("--only", choices=("sample", "dev"), help="run only this corpus")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for one reply (default 60)"
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the bot to start polling (default 300)",
    )
    parser.add_argument(
        "--dev-data-dir",
        type=Path,
        help="the indexed RealTime QA data directory to copy "
        "(default: the one benchmarks/retrieval.py caches)",
    )
    parser.add_argument(
        "--build-dev",
        action="store_true",
        help="build the dev data directory with benchmarks/retrieval.py when it is missing",
    )
    return parser


@dataclass
class Sample:
    """One measured question: server-side timestamps (time.time()) of its milestones."""

    user_id: int
    question: str
    enqueued: float
    typing: float | None = None
    replied: float | None = None
    status: int | None = None
    text: str = ""

    @property
    def total_ms(self) -> float:
        assert self.replied is not None
        return 1000.0 * (self.replied - self.enqueued)


@dataclass
class Run:
    """The outcome of one corpus."""

    corpus: str
    articles: int
    chunks: int
    startup_s: float
    samples: list[Sample] = field(default_factory=list)
    timeouts: int = 0
    note: str = ""


def make_api() -> Any:
    """A FakeBotApi that remembers when each update was enqueued (per chat and message)."""
    from tests.fake_bot_api import FakeBotApi

    class TimedBotApi(FakeBotApi):
        def __init__(self) -> None:
            super().__init__(host="127.0.0.1")
            self.enqueued_at: dict[tuple[int, int], float] = {}

        def _enqueue(self, kind: str, obj: dict) -> dict:
            update = super()._enqueue(kind, obj)  # called with the lock held
            chat = obj.get("chat") or {}
            if "message_id" in obj and "id" in chat:
                self.enqueued_at[(int(chat["id"]), int(obj["message_id"]))] = time.time()
            return update

    return TimedBotApi()


def corpus_counts(data_dir: Path) -> tuple[int, int]:
    """Articles and chunks in the data directory's database (a private copy)."""
    con = sqlite3.connect(data_dir / "newsbot.db", timeout=30)
    try:
        (articles,) = con.execute("SELECT COUNT(*) FROM articles").fetchone()
        (chunks,) = con.execute("SELECT COUNT(*) FROM chunks").fetchone()
    finally:
        con.close()
    return int(articles), int(chunks)


def bot_env(api: Any, data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        NEWSBOT_DATA_DIR=str(data_dir),
        NEWSBOT_TELEGRAM_TOKEN=api.token,
        NEWSBOT_TELEGRAM_API_URL=api.base_url.removesuffix("/bot"),
        NEWSBOT_ADMIN_IDS=str(ADMIN_ID),
        NEWSBOT_USER_RATE_PER_MINUTE="100000",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(key, None)
    return env


def stop_bot(proc: subprocess.Popen) -> None:
    """SIGINT, then kill after 20 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        common.log("  the bot did not stop within 20 s of SIGINT; killing it")
        proc.kill()
        proc.wait(timeout=10)


def log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


def ask(api: Any, proc: subprocess.Popen, user_id: int, question: str, timeout: float) -> Sample:
    """Send one private message and wait (bounded) for the bot's first sendMessage to it."""
    sent = api.private_message(user_id, question)
    with api._cond:  # the enqueue time was recorded under this lock
        enqueued = api.enqueued_at[(user_id, sent["message_id"])]
    sample = Sample(user_id, question, enqueued)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the bot exited with status {proc.returncode}")
        for call in api.calls("sendMessage"):
            if call.time < enqueued or _chat_id(call.params) != user_id:
                continue
            if call.status is None:  # arrived, answer still being written: wait for it
                break
            sample.replied, sample.status = call.time, call.status
            sample.text = str(call.params.get("text") or "")
            for action in api.calls("sendChatAction"):
                if action.time >= enqueued and _chat_id(action.params) == user_id:
                    sample.typing = action.time
                    break
            return sample
        time.sleep(0.005)
    return sample


def _chat_id(params: dict) -> int | None:
    try:
        return int(params["chat_id"])
    except (KeyError, TypeError, ValueError):
        return None


def run_corpus(
    name: str, data_dir: Path, questions: list[str], user_base: int, args: argparse.Namespace
) -> Run:
    """Start a bot on ``data_dir``, warm it up, ask ``args.n`` questions, stop it."""
    articles, chunks = corpus_counts(data_dir)
    log_path = data_dir.parent / f"bot-{name}.log"
    api = make_api().start()
    proc: subprocess.Popen | None = None
    run = Run(name, articles, chunks, float("nan"))
    try:
        with log_path.open("w") as log:
            common.log(f"[{name}] starting newsbot run ({articles:,} articles, {chunks:,} chunks)")
            started = time.monotonic()
            proc = subprocess.Popen(
                [str(NEWSBOT), "run"],
                env=bot_env(api, data_dir),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=data_dir.parent,
            )
            deadline = started + args.start_timeout
            while not api.calls("getUpdates"):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"the bot exited with status {proc.returncode} while starting:\n"
                        + log_tail(log_path)
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the bot did not start polling within {args.start_timeout:.0f} s:\n"
                        + log_tail(log_path)
                    )
                time.sleep(0.05)
            run.startup_s = time.monotonic() - started
            common.log(f"[{name}] polling after {run.startup_s:.1f} s; warming up")

            user = user_base
            order = questions[:]
            for i in range(WARMUP):
                user += 1
                sample = ask(api, proc, user, order[(args.n + i) % len(order)], args.timeout)
                if sample.replied is None:
                    raise RuntimeError(f"no reply to a warm-up question within {args.timeout} s")

            consecutive = 0
            for i in range(args.n):
                user += 1
                sample = ask(api, proc, user, order[i % len(order)], args.timeout)
                if sample.replied is None:
                    run.timeouts += 1
                    consecutive += 1
                    common.log(f"[{name}] no reply within {args.timeout} s: {sample.question!r}")
                    if consecutive >= 3:
                        run.note = "stopped after 3 consecutive timeouts"
                        break
                    continue
                consecutive = 0
                run.samples.append(sample)
                if (i + 1) % 25 == 0:
                    done = [s.total_ms for s in run.samples]
                    common.log(
                        f"[{name}] {i + 1}/{args.n}  p50 {common.percentile(done, 50):.0f} ms"
                    )
    finally:
        if proc is not None:
            stop_bot(proc)
            if proc.returncode not in (0, -2, 130):
                common.log(
                    f"[{name}] the bot ended with status {proc.returncode}; log tail:\n"
                    + log_tail(log_path, 1500)
                )
        api.stop()
    return run


# -- the corpora ----------------------------------------------------------------------------


def sample_questions() -> list[str]:
    rows = [
        json.loads(line)["question"]
        for line in SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    random.Random(SEED).shuffle(rows)
    return rows


def prepare_sample(workdir: Path) -> Path:
    data = workdir / "sample-data"
    data.mkdir()
    common.log("[sample] newsbot ingest corpus/samples ...")
    env = dict(os.environ, NEWSBOT_DATA_DIR=str(data), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [str(NEWSBOT), "ingest", str(SAMPLE_CORPUS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"newsbot ingest failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return data


def dev_source(args: argparse.Namespace) -> Path | None:
    """The indexed dev data directory to copy, or None (with a message) to skip (b)."""
    source = args.dev_data_dir or common.default_cache_dir("realtimeqa", ())
    if (source / "newsbot.db").is_file() and (source / "index").is_dir():
        return source
    if not args.build_dev or args.dev_data_dir:
        print(
            f"dev corpus: skipped: no indexed data directory at {source}; build it with "
            f"`.venv/bin/python benchmarks/retrieval.py --limit 1` or pass --build-dev"
        )
        return None
    common.log(f"[dev] building {source} with benchmarks/retrieval.py (ingest + embedding) ...")
    result = subprocess.run(
        [sys.executable, str(common.REPO_ROOT / "benchmarks" / "retrieval.py"), "--limit", "1"],
        stdin=subprocess.DEVNULL,
        timeout=7200,
    )
    if result.returncode != 0 or not (source / "index").is_dir():
        print(f"dev corpus: skipped: building {source} failed ({result.returncode})")
        return None
    return source


def prepare_dev(source: Path, workdir: Path) -> Path:
    data = workdir / "dev-data"
    common.log(f"[dev] copying {source} ...")
    # The database and its WAL files are copied together; the index files keep their mtimes.
    shutil.copytree(source, data, symlinks=True)
    return data


def dev_questions() -> list[str]:
    root = common.SHARED_DATA / common.REALTIMEQA
    questions = [q.sentence for q in common.load_questions(root, only_scorable=False)]
    random.Random(SEED).shuffle(questions)
    return questions


# -- output ---------------------------------------------------------------------------------


def report(runs: list[Run], n: int, busy: str) -> None:
    rows, split, extra = [], [], []
    for r in runs:
        ms = [s.total_ms for s in r.samples]
        rows.append(
            [
                r.corpus,
                r.articles,
                r.chunks,
                len(ms),
                common.percentile(ms, 50),
                common.percentile(ms, 95),
                sum(ms) / len(ms) if ms else None,
                max(ms) if ms else None,
            ]
        )
        to_typing = [1000 * (s.typing - s.enqueued) for s in r.samples if s.typing]
        after = [1000 * (s.replied - s.typing) for s in r.samples if s.typing and s.replied]
        split.append(
            [
                r.corpus,
                common.percentile(to_typing, 50),
                common.percentile(to_typing, 95),
                common.percentile(after, 50),
                common.percentile(after, 95),
                r.startup_s,
            ]
        )
        abstained = sum(1 for s in r.samples if "does not say" in s.text)
        errors = sum(1 for s in r.samples if s.status != 200 or "went wrong" in s.text)
        extra.append(
            f"{r.corpus}: {len(ms)}/{n} answered in time, {r.timeouts} timed out, "
            f"{abstained} abstained, {errors} errors" + (f"; {r.note}" if r.note else "")
        )
    common.print_table(
        ["corpus", "articles", "chunks", "n", "p50 ms", "p95 ms", "mean", "max"],
        rows,
        title="Telegram round trip: update enqueued at the Bot API server -> bot's sendMessage "
        f"received ({WARMUP} warm-up questions first, sequential, one user per question)",
    )
    common.print_table(
        [
            "corpus",
            "to typing p50",
            "to typing p95",
            "typing->reply p50",
            "typing->reply p95",
            "startup s",
        ],
        split,
        title="Split at the sendChatAction call (ms): delivery + dispatch | answer + render + send",
    )
    for line in extra:
        print(line)
    for r in runs:
        ms = [s.total_ms for s in r.samples]
        p50 = common.percentile(ms, 50)
        verdict = "PASS" if ms and p50 <= FLOOR_MS else "FAIL"
        print(f"floor p50 <= {FLOOR_MS:.0f} ms: {r.corpus}: {verdict} (p50 {p50:.1f} ms)")
    print(f"machine: {busy}")


def load_note(start: tuple[float, float, float]) -> str:
    one, five, _ = os.getloadavg()
    return (
        f"{os.cpu_count()} CPUs; load average (1 min) {start[0]:.2f} at the start, "
        f"{one:.2f} at the end ({five:.2f} over the last 5 min)"
    )


def main() -> int:
    args = build_parser().parse_args()
    if args.n < 1:
        print("telegram_roundtrip.py: --n must be at least 1", file=sys.stderr)
        return 2
    if not NEWSBOT.exists():
        print(f"telegram_roundtrip.py: {NEWSBOT} not found (install the package)", file=sys.stderr)
        return 2

    # SIGTERM/SIGHUP unwind like Ctrl-C, so the finally blocks stop the bot.
    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
        signal.signal(signal.SIGHUP, interrupt)

    common.print_machine_header()
    load_at_start = os.getloadavg()
    runs: list[Run] = []
    have_shared = (common.SHARED_DATA / common.REALTIMEQA).is_dir()
    with tempfile.TemporaryDirectory(prefix="newsbot-roundtrip-") as tmp:
        workdir = Path(tmp)
        if args.only in (None, "sample"):
            data = prepare_sample(workdir)
            runs.append(run_corpus("sample", data, sample_questions(), SAMPLE_USERS, args))
            shutil.rmtree(data, ignore_errors=True)
        if args.only in (None, "dev"):
            if not have_shared:
                print(
                    f"dev corpus: skipped: benchmark data not found at "
                    f"{common.SHARED_DATA / common.REALTIMEQA} (needs ../shared/data)"
                )
            elif (source := dev_source(args)) is not None:
                data = prepare_dev(source, workdir)
                runs.append(run_corpus("dev", data, dev_questions(), DEV_USERS, args))
                shutil.rmtree(data, ignore_errors=True)
    if runs:
        report(runs, args.n, load_note(load_at_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
