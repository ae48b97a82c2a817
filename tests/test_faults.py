"""kill -9 at each step of ingest, poll, routing and delivery, then restart: nothing is
lost and nothing is sent twice.

The processes are the real ones (``newsbot ingest``, ``newsbot poll``, ``newsbot run``)
against a local Bot API server and a local news site. ``NEWSBOT_CRASH_AT`` makes a
process SIGKILL itself at a named step (corpus/faults.py), so each crash lands exactly
where the test means it to, with no sleeps and no races.

"Nothing arrived twice" is checked with a canary: after the restart a last push is
queued behind everything else, and the outbox sends in order, so once the canary has
arrived every earlier push has had its chance to arrive again.

The one window the Bot API leaves open is a crash after Telegram accepted a push and
before it is marked sent: that push goes out again after the restart (at least once,
never lost), which the delivery test shows for exactly the push in flight.
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.telegram.delivery import digest_parts
from corpus.store import Store
from corpus.subscription_repo import SubscriptionRepo
from tests.bot_process import BotProcess
from tests.conftest import run_cli
from tests.fake_bot_api import FakeBotApi
from tests.servers.news_site import NewsSite

FEED_CHAT = 9001  # follows the feed
TOPIC_CHAT = 9003  # follows a topic that one ingested file matches
DIGEST_CHAT = 9002
CANARY_CHAT = FEED_CHAT
SIGKILL = -9


def _entry(n: int, topic: str) -> dict:
    body = (
        f"<p>The council of the fictional town of Elmsford number {n} voted on Tuesday to "
        f"{topic}, its mayor said after a meeting that ran late into the night.</p>"
        f"<p>Residents had asked for the change for years, and the vote passed {n + 5} to 2, "
        "according to the fictional Elmsford Gazette, which first reported the decision.</p>"
        "<p>Work is to start in the spring, once the town has found a contractor, and the "
        "council expects it to be finished before the end of next year.</p>"
    )
    return {
        "guid": f"elmsford-{n}",
        "title": f"Elmsford council vote {n}: {topic}",
        "link": f"/news/elmsford-{n}.html",
        "published": datetime(2023, 9, 10 + n, 8, 0, tzinfo=UTC),
        "summary": f"Elmsford council vote {n}.",
        "content": body,
    }


ENTRIES = [
    _entry(1, "rebuild the old stone bridge over the river"),
    _entry(2, "open the public library on Sundays"),
    _entry(3, "plant four hundred trees along the main road"),
]
FILES = {
    "a-museum.md": (
        "Harbour museum reopens in Portvale",
        "The fictional harbour museum of Portvale reopened on Saturday after a two-year "
        "renovation of its old sail loft, with a new room on the history of the ferry lines.",
    ),
    "b-ferry.md": (
        "Portvale ferry strike ends after deal on deckhands",
        "Dock workers in the fictional port of Portvale ended their three-day ferry strike on "
        "Tuesday after the ferry company agreed to hire 40 more deckhands, the dock workers' "
        "union said. Ferries to the islands will run on the normal timetable from Wednesday.",
    ),
    "c-market.md": (
        "Portvale fish market moves to the quay",
        "The fictional fish market of Portvale moved to the north quay on Monday, where "
        "traders have more room and the lorries no longer block the old town's streets.",
    ),
}


def _write_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (title, body) in FILES.items():
        front = "---\ndate: 2023-09-20\nsource: Portvale Post (fictional)\n---\n"
        (folder / name).write_text(f"{front}# {title}\n\n{body}\n")
    return folder


@pytest.fixture(scope="module")
def data(sample_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("faults") / "data"
    shutil.copytree(sample_data_dir, target, symlinks=True)
    return target


@pytest.fixture(scope="module")
def env(site: NewsSite) -> dict[str, str]:
    # The reader is beside the point here: quotes-only answers start faster.
    return {"NEWSBOT_URL_ALLOWLIST": site.netloc, "NEWSBOT_READER_WEIGHTS": "off"}


@pytest.fixture(scope="module")
def bot(api: FakeBotApi, data: Path, env: dict[str, str]) -> Iterator[BotProcess]:
    process = BotProcess(
        api,
        data,
        url_allowlist=env["NEWSBOT_URL_ALLOWLIST"],
        reader_weights="off",
        feed_check_seconds="3600",
    )
    try:
        yield process
    finally:
        process.stop()


def _cli(data: Path, env: dict[str, str], *args: str, crash_at: str = ""):
    return run_cli(*args, data_dir=data, env={**env, "NEWSBOT_CRASH_AT": crash_at})


def _sql(data: Path, sql: str, params: tuple = ()) -> list[tuple]:
    async def run() -> list[tuple]:
        async with await Store.open(data / "newsbot.db") as store:
            return [tuple(r) for r in await store.fetchall(sql, params)]

    return asyncio.run(run())


def _titles_sent(api: FakeBotApi, chat_id: int) -> Counter[str]:
    """How often each pushed title reached the chat (a push's first line is its title)."""
    return Counter(m["text"].split("\n", 1)[0] for m in api.bot_messages(chat_id))


def _crashed(bot: BotProcess) -> int | None:
    assert bot.proc is not None
    return bot.proc.wait(timeout=120)


def _send_canary(api: FakeBotApi, data: Path, title_part: str) -> None:
    """Queue one more push behind everything else and wait until it arrives."""
    (article_id,) = _sql(data, "SELECT id FROM articles WHERE title LIKE ?", (f"%{title_part}%",))[
        0
    ]

    async def queue() -> None:
        async with await Store.open(data / "newsbot.db") as store:
            await SubscriptionRepo(store).finish_route(article_id, [(CANARY_CHAT, None, None)])

    asyncio.run(queue())
    api.wait_for(lambda a: any(title_part in t for t in _titles_sent(a, CANARY_CHAT)), timeout=60)


def test_killed_poll_ingest_routing_and_delivery_lose_nothing(
    api: FakeBotApi, site: NewsSite, bot: BotProcess, data: Path, env: dict[str, str]
) -> None:
    site.set_feed("/elmsford.xml", ENTRIES, full_content=True)
    assert _cli(data, env, "feeds", "add", site.url("/elmsford.xml")).returncode == 0
    for chat in (FEED_CHAT, TOPIC_CHAT):
        api.private_message(chat, "/start")  # the chats exist on the Bot API side

    async def subscribe() -> None:
        async with await Store.open(data / "newsbot.db") as store:
            subs = SubscriptionRepo(store)
            for chat in (FEED_CHAT, TOPIC_CHAT):
                await subs.upsert_chat(chat, "private")
            await subs.add(FEED_CHAT, "feed", feed_id=1)
            await subs.add(TOPIC_CHAT, "topic", query="Portvale ferry strike dock workers")

    asyncio.run(subscribe())

    # 1. A poll killed after its second entry: two articles, each seen and queued for
    #    routing in its own transaction; the third entry is neither.
    result = _cli(data, env, "poll", crash_at="poll.after_entry#2")
    assert result.returncode == SIGKILL, result.stdout + result.stderr
    assert len(_sql(data, "SELECT guid FROM feed_entries")) == 2
    assert len(_sql(data, "SELECT article_id FROM route_queue")) == 2

    # 2. An ingest of files killed after its second article.
    files = _write_files(data.parent / "files")
    result = _cli(data, env, "ingest", str(files), crash_at="ingest.after_article#2")
    assert result.returncode == SIGKILL, result.stdout + result.stderr
    assert len(_sql(data, "SELECT id FROM articles WHERE title LIKE 'Portvale%'")) == 1
    assert len(_sql(data, "SELECT article_id FROM route_queue")) == 4

    # 3. Both again, the poll killed after routing its first article: everything is in,
    #    one article routed, the others still queued, nothing stored twice.
    result = _cli(data, env, "ingest", "--no-index", str(files))  # no index: no routing
    assert result.returncode == 0, result.stdout + result.stderr
    assert "added 1" in result.stdout and "duplicates 2" in result.stdout
    result = _cli(data, env, "poll", crash_at="route.after_article#1")
    assert result.returncode == SIGKILL, result.stdout + result.stderr
    assert len(_sql(data, "SELECT guid FROM feed_entries")) == 3
    assert len(_sql(data, "SELECT id FROM articles WHERE title LIKE 'Elmsford%'")) == 3
    assert len(_sql(data, "SELECT article_id FROM route_queue")) == 5

    # 4. The bot routes what waits and sends; killed right after Telegram took its second
    #    push, before marking it sent.
    bot.env["NEWSBOT_CRASH_AT"] = "delivery.after_send#2"
    bot.start()
    assert _crashed(bot) == SIGKILL, bot.log_tail()

    # 5. Restarted: the rest goes out; the push that was in flight goes out again.
    bot.env["NEWSBOT_CRASH_AT"] = ""
    bot.start()
    expected = {e["title"] for e in ENTRIES}
    api.wait_for(lambda a: expected <= set(_titles_sent(a, FEED_CHAT)), timeout=60)
    api.wait_for(
        lambda a: any("Portvale ferry strike" in t for t in _titles_sent(a, TOPIC_CHAT)),
        timeout=60,
    )
    _send_canary(api, data, "Harbour museum")
    sent = _titles_sent(api, FEED_CHAT)
    ferry = _titles_sent(api, TOPIC_CHAT)[FILES["b-ferry.md"][0]]
    counts = sorted([*(sent[title] for title in expected), ferry])
    assert counts == [1, 1, 1, 2], (sent, ferry)  # the push in flight
    assert _sql(data, "SELECT COUNT(*) FROM route_queue") == [(0,)]
    assert not any("museum" in t or "fish market" in t for t in _titles_sent(api, TOPIC_CHAT))

    # 6. Restarting once more sends nothing again.
    bot.stop()
    bot.start()
    _send_canary(api, data, "fish market")
    again = _titles_sent(api, FEED_CHAT)
    assert all(again[title] == sent[title] for title in expected), again
    bot.stop()


def test_killed_digest_resends_only_the_parts_not_delivered(
    api: FakeBotApi, bot: BotProcess, data: Path
) -> None:
    api.private_message(DIGEST_CHAT, "/start")

    async def queue() -> list[str]:
        async with await Store.open(data / "newsbot.db") as store:
            subs = SubscriptionRepo(store)
            await subs.upsert_chat(DIGEST_CHAT, "private")
            await subs.set_digest(DIGEST_CHAT, "00:00")
            articles = await store.all_articles()
            for article in articles:
                await subs.finish_route(article.id, [(DIGEST_CHAT, None, (0, len(article.text)))])
            pending = await subs.pending_for(DIGEST_CHAT)
            by_id = {a.id: a for a in articles}
            parts = digest_parts([(d, by_id[d.article_id]) for d in pending])
            assert len(parts) >= 3  # so a kill after the first part leaves parts to send
            return [a.title for a in articles]

    titles = asyncio.run(queue())
    bot.env["NEWSBOT_CRASH_AT"] = "digest.after_part#1"
    bot.start()
    assert _crashed(bot) == SIGKILL, bot.log_tail()
    first = [m for m in api.bot_messages(DIGEST_CHAT) if "Your news digest" in m["text"]]
    assert len(first) == 1 and len(api.bot_messages(DIGEST_CHAT)) == 2  # /start's reply

    bot.env["NEWSBOT_CRASH_AT"] = ""
    bot.start()

    def shown(a: FakeBotApi) -> Counter[str]:
        texts = [m["text"] for m in a.bot_messages(DIGEST_CHAT)]
        return Counter(t for t in titles for text in texts if t in text)

    api.wait_for(lambda a: set(shown(a)) == set(titles), timeout=60)
    api.wait_for(
        lambda a: (
            _sql(data, "SELECT last_digest_on FROM chats WHERE chat_id = ?", (DIGEST_CHAT,))
            != [(None,)]
        ),
        timeout=30,
    )
    assert all(n == 1 for n in shown(api).values()), shown(api)
    assert _sql(
        data,
        "SELECT COUNT(*) FROM deliveries WHERE chat_id = ? AND status = 'pending'",
        (DIGEST_CHAT,),
    ) == [(0,)]
    bot.stop()
