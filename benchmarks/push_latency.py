"""Time from a feed entry appearing to its push being sent, through the real bot.

Run by benchmarks/subscriptions.py (``--only push --push-latency N``): the real
``newsbot run`` process, a local Bot API server and a local news site; a group follows a
topic; for each sample a new matching entry is published and the feed is made due.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common

# -- push latency through the real bot ------------------------------------------------------

PUSH_ADMIN = 4242  # a bot admin (NEWSBOT_ADMIN_IDS) and an admin of the group
PUSH_GROUP = -100_424_242
PUSH_TOPIC = "Iran Russia security cooperation"
PUSH_FEED = "/push-feed.xml"
PUSH_FEED_KEEP = 10  # entries the feed lists (newest first), like a real feed's window
PUSH_WARMUP = 2
PUSH_TIMEOUT = 60.0  # seconds for one push
PUSH_START_TIMEOUT = 300.0  # seconds for the bot to start polling Telegram
PUSH_SETUP_TIMEOUT = 60.0  # seconds for each setup step (/follow, /addfeed, first fetch)
PUSH_SUBJECTS = (
    "border policing",
    "port security",
    "cyber crime investigations",
    "police training",
    "coast guard patrols",
    "drug trafficking cases",
    "airport screening",
    "counter-terrorism drills",
)
PUSH_MONTHS = ("March", "April", "May", "June", "September", "October", "November")
PUSH_UNRELATED = {
    "guid": "push-bench-cheese-fair",
    "title": "Mountain village cheese fair draws record crowds",
    "link": "/news/push-bench-cheese-fair.html",
    "summary": "A cheese fair in a mountain village drew record crowds.",
    "content": (
        "<p>A cheese fair in the mountain village of Orlen drew a record 12,000 visitors over "
        "the weekend, its organisers said on Sunday.</p><p>Sixty dairies from four valleys sold "
        "hard and soft cheeses, and a brass band played in the square until late, according "
        "to the fictional Valley Courier.</p><p>The fair has been held every September since "
        "1952, and the village council said it would add a second day next year because of "
        "the crowds and the queues for the buses.</p>"
    ),
}


def push_entry(i: int) -> dict[str, Any]:
    """A new fictional entry on the followed topic, unique in guid, title, link and text."""
    import re

    from corpus.feedparse import FULL_CONTENT_MIN_CHARS

    subject = PUSH_SUBJECTS[i % len(PUSH_SUBJECTS)]
    month = PUSH_MONTHS[i % len(PUSH_MONTHS)]
    officers = 120 + 37 * i
    title = f"Iran and Russia sign security cooperation protocol {i + 1} on {subject}"
    content = (
        f"<p>Iran and Russia signed their security cooperation protocol number {i + 1} on "
        f"{subject} in Moscow on Tuesday, the interior ministries of both countries said, "
        f"extending the security cooperation memorandum the two governments agreed last "
        f"year.</p><p>Under the protocol about {officers} Iranian and Russian officers will "
        f"work together on {subject} from {month}, and liaison offices will open in Tehran "
        f"and Moscow, the fictional Caspian Desk agency reported in its bulletin {1000 + i}.</p>"
        f"<p>Officials in Tehran said the security cooperation between Iran and Russia would "
        f"be reviewed after {6 + i % 5} months; neither side gave the cost of the plan.</p>"
    )
    assert len(re.sub(r"<[^>]+>", "", content)) >= FULL_CONTENT_MIN_CHARS
    return {
        "guid": f"push-bench-{i}",
        "title": title,
        "link": f"/news/push-bench-{i}.html",
        "published": datetime.now(UTC).replace(microsecond=0),
        "summary": f"Iran and Russia agreed protocol {i + 1} on {subject}.",
        "content": content,
    }


def make_feed_due(db_path: Path, feed_id: int) -> float:
    """Set the feed's next_run_at to now in one short WAL transaction; the commit time."""
    con = sqlite3.connect(db_path, timeout=10, isolation_level=None)
    try:
        con.execute("PRAGMA busy_timeout = 10000")
        (mode,) = con.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise RuntimeError(f"the database is in journal mode {mode!r}, not WAL")
        now = datetime.now(UTC).isoformat(timespec="seconds")  # the FeedRepo format
        con.execute("BEGIN IMMEDIATE")
        try:
            cur = con.execute("UPDATE feeds SET next_run_at = ? WHERE id = ?", [now, feed_id])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        committed = time.time()
        if cur.rowcount != 1:
            raise RuntimeError(f"there is no feed {feed_id}")
        return committed
    finally:
        con.close()


def feed_fetched(db_path: Path, url: str) -> int | None:
    """The id of the feed with this URL once it has been fetched at least once."""
    con = sqlite3.connect(db_path, timeout=10)
    try:
        row = con.execute(
            "SELECT id FROM feeds WHERE url = ? AND last_fetch_at IS NOT NULL", [url]
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else None


@dataclass
class PushSample:
    """One entry: due (t0), first feed request after it, push received (t1); time.time()."""

    title: str
    due: float
    fetched: float | None = None
    pushed: float | None = None
    status: int | None = None


def push_latency(n: int) -> int:
    """Feed entry -> push latency through the real bot process; prints the table."""
    from benchmarks import telegram_roundtrip as roundtrip
    from bot.telegram.delivery import GROUP_INTERVAL
    from tests.fake_bot_api import FakeBotApi
    from tests.servers.news_site import NewsSite

    class TimedNewsSite(NewsSite):
        """The news site, remembering when each request for the feed arrived."""

        def __init__(self) -> None:
            super().__init__()
            self.feed_requests: list[float] = []

        def _record(self, path: str, headers: dict[str, str]) -> None:
            super()._record(path, headers)
            if path.split("?", 1)[0] == PUSH_FEED:
                with self._lock:
                    self.feed_requests.append(time.time())

    if not roundtrip.NEWSBOT.exists():
        print(f"subscriptions.py: {roundtrip.NEWSBOT} not found (install the package)")
        return 2

    def interrupt(signum: int, _frame: Any) -> None:  # unwind, so the bot is stopped
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
        signal.signal(signal.SIGHUP, interrupt)

    load_at_start = os.getloadavg()
    rng = random.Random(20230904)
    samples: list[PushSample] = []
    missed = 0
    note = ""
    startup_s = float("nan")
    with tempfile.TemporaryDirectory(prefix="newsbot-push-") as tmp:
        workdir = Path(tmp)
        data = roundtrip.prepare_sample(workdir)
        db_path = data / "newsbot.db"
        log_path = workdir / "bot-push.log"
        api = FakeBotApi(host="127.0.0.1").start()
        site = TimedNewsSite()
        site.start()
        proc: subprocess.Popen | None = None

        def wait(predicate: Any, timeout: float, what: str) -> Any:
            deadline = time.monotonic() + timeout
            while True:
                value = predicate()
                if value:
                    return value
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(
                        f"the bot exited with status {proc.returncode} while waiting for "
                        f"{what}:\n" + roundtrip.log_tail(log_path)
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"timed out after {timeout:.0f} s waiting for {what}:\n"
                        + api.dump()
                        + "\n"
                        + roundtrip.log_tail(log_path)
                    )
                time.sleep(0.005)

        def bot_reply(chat_id: int, contains: str) -> bool:
            return any(contains in m["text"] for m in api.bot_messages(chat_id))

        try:
            feed_url = site.url(PUSH_FEED)
            entries: list[dict[str, Any]] = [PUSH_UNRELATED]
            site.set_feed(PUSH_FEED, entries, kind="rss", full_content=True)
            env = roundtrip.bot_env(api, data)
            env.update(
                NEWSBOT_ADMIN_IDS=str(PUSH_ADMIN),
                NEWSBOT_URL_ALLOWLIST=site.netloc,
                NEWSBOT_FEED_CHECK_SECONDS="1",
            )
            with log_path.open("w") as log:
                common.log("[push] starting newsbot run on the sample corpus ...")
                started = time.monotonic()
                proc = subprocess.Popen(
                    [str(roundtrip.NEWSBOT), "run"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=workdir,
                )
            wait(lambda: api.calls("getUpdates"), PUSH_START_TIMEOUT, "the bot to start polling")
            startup_s = time.monotonic() - started
            common.log(f"[push] polling after {startup_s:.1f} s; setting up the group and feed")

            api.set_member_status(PUSH_GROUP, PUSH_ADMIN, "administrator")
            api.group_message(PUSH_GROUP, PUSH_ADMIN, f"/follow {PUSH_TOPIC}")
            wait(lambda: bot_reply(PUSH_GROUP, "Following"), PUSH_SETUP_TIMEOUT, "/follow")
            api.private_message(PUSH_ADMIN, f"/addfeed {feed_url} 5")
            wait(lambda: bot_reply(PUSH_ADMIN, "added"), PUSH_SETUP_TIMEOUT, "/addfeed")
            feed_id = wait(
                lambda: feed_fetched(db_path, feed_url), PUSH_SETUP_TIMEOUT, "the first fetch"
            )

            last_push = time.time()
            consecutive = 0
            for i in range(PUSH_WARMUP + n):
                # Past the group pace, at a random phase of the 1 s due-feed check.
                time.sleep(max(0.0, last_push + GROUP_INTERVAL + 0.5 + rng.random() - time.time()))
                entry = push_entry(i)
                entries = [entry, *entries][:PUSH_FEED_KEEP]
                site.set_feed(PUSH_FEED, entries, kind="rss", full_content=True)
                with site._lock:
                    seen_requests = len(site.feed_requests)
                sample = PushSample(entry["title"], make_feed_due(db_path, feed_id))
                deadline = time.monotonic() + PUSH_TIMEOUT
                while time.monotonic() < deadline and sample.pushed is None:
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"the bot exited with status {proc.returncode}:\n"
                            + roundtrip.log_tail(log_path)
                        )
                    for call in api.calls("sendMessage"):
                        if (
                            call.time >= sample.due
                            and call.status is not None
                            and str(call.params.get("chat_id")) == str(PUSH_GROUP)
                            and sample.title in str(call.params.get("text") or "")
                        ):
                            sample.pushed, sample.status = call.time, call.status
                            break
                    else:
                        time.sleep(0.005)
                with site._lock:
                    after = site.feed_requests[seen_requests:]
                sample.fetched = next((t for t in after if t >= sample.due), None)
                label = "warm-up" if i < PUSH_WARMUP else f"{i - PUSH_WARMUP + 1}/{n}"
                if sample.pushed is None:
                    common.log(f"[push] {label}: no push within {PUSH_TIMEOUT:.0f} s")
                    missed += i >= PUSH_WARMUP
                    consecutive += 1
                    if consecutive >= 3:
                        note = "stopped after 3 consecutive missing pushes"
                        break
                    last_push = time.time()
                    continue
                consecutive = 0
                last_push = sample.pushed
                common.log(f"[push] {label}: {1000 * (sample.pushed - sample.due):.0f} ms")
                if i >= PUSH_WARMUP:
                    samples.append(sample)
        finally:
            if proc is not None:
                roundtrip.stop_bot(proc)
                if proc.returncode not in (0, -2, 130):
                    common.log(
                        f"[push] the bot ended with status {proc.returncode}; log tail:\n"
                        + roundtrip.log_tail(log_path, 1500)
                    )
            api.stop()
            site.stop()
    report_push(samples, n, missed, note, startup_s, roundtrip.load_note(load_at_start))
    return 0


def report_push(
    samples: list[PushSample], n: int, missed: int, note: str, startup_s: float, machine: str
) -> None:
    """The latency table, the split at the feed fetch, and the notes."""
    common.print_machine_header()

    def row(name: str, ms: list[float]) -> list[Any]:
        return [
            name,
            len(ms),
            common.percentile(ms, 50),
            common.percentile(ms, 95),
            sum(ms) / len(ms) if ms else None,
            max(ms) if ms else None,
        ]

    total = [1000 * (s.pushed - s.due) for s in samples if s.pushed is not None]
    to_fetch = [1000 * (s.fetched - s.due) for s in samples if s.fetched is not None]
    after_fetch = [
        1000 * (s.pushed - s.fetched) for s in samples if s.fetched is not None and s.pushed
    ]
    common.print_table(
        ["interval", "n", "p50 ms", "p95 ms", "mean ms", "max ms"],
        [
            row("feed due -> push received (t1 - t0)", total),
            row("  feed due -> feed fetched", to_fetch),
            row("  feed fetched -> push received", after_fetch),
        ],
        title="Push latency through the real bot: feed made due (next_run_at = now) -> "
        f"sendMessage to the following group received (NEWSBOT_FEED_CHECK_SECONDS=1, "
        f"sender every 1 s; {PUSH_WARMUP} warm-up pushes first)",
    )
    errors = sum(1 for s in samples if s.status != 200)
    print(
        f"{len(total)}/{n} pushed in time, {missed} missing, {errors} errors; bot startup "
        f"{startup_s:.1f} s" + (f"; {note}" if note else "")
    )
    print(
        "note: the end-to-end delay from an entry's publication is this plus the wait for "
        "the feed's next poll: on average half the feed interval, at most one interval "
        "(here /addfeed ... 5: 2.5 min on average, 5 min at most). The due-feed check runs "
        "every NEWSBOT_FEED_CHECK_SECONDS (1 s here; 60 s by default, which adds on "
        "average 30 s, at most 60 s, in place of the 0-1 s measured here)."
    )
    print(f"machine: {machine}")
