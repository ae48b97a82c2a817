"""End to end for feeds, channels and subscriptions: the real bot process, a local Bot API
server, and a local news site serving feeds. Pushes go through the durable outbox."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from corpus.store import Store
from corpus.subscription_repo import SubscriptionRepo
from tests.bot_process import BotProcess
from tests.conftest import run_cli
from tests.fake_bot_api import FakeBotApi
from tests.servers.news_site import NewsSite

ADMIN = 5151
GROUP = -100555
MEMBER = 2020

MATCHING = {
    "guid": "iran-russia-drill",
    "title": "Iran and Russia plan joint police training under security pact",
    "link": "/news/iran-russia-drill.html",
    "published": datetime(2023, 9, 4, 8, 0, tzinfo=UTC),
    "summary": "Police forces of Iran and Russia will train together.",
    "content": (
        "<p>Police forces of Iran and Russia will hold joint training next spring under the "
        "security cooperation memorandum signed in Moscow, officials in Tehran said on Monday.</p>"
        "<p>The exercise is meant to deepen security and law enforcement cooperation between the "
        "two countries, the fictional Caspian Desk agency reported, adding that about 300 officers "
        "from both sides would take part in drills near the Caspian Sea in April.</p>"
        "<p>Neither side gave the cost of the training, which follows a series of visits by senior "
        "police officials between Tehran and Moscow this year.</p>"
    ),
}
UNRELATED = {
    "guid": "cheese-fair",
    "title": "Mountain village cheese fair draws record crowds",
    "link": "/news/cheese-fair.html",
    "published": datetime(2023, 9, 4, 9, 0, tzinfo=UTC),
    "summary": "A cheese fair in a mountain village drew record crowds.",
    "content": (
        "<p>A cheese fair in the mountain village of Orlen drew a record 12,000 visitors over the "
        "weekend, its organisers said on Sunday.</p>"
        "<p>Sixty dairies from four valleys sold hard and soft cheeses, and a brass band played "
        "in the square until late, according to the fictional Valley Courier.</p>"
        "<p>The fair has been held every September since 1952, and the village council said it "
        "would add a second day next year because of the crowds and the queues for the buses.</p>"
    ),
}


@pytest.fixture(scope="module")
def bot(
    api: FakeBotApi, site: NewsSite, sample_data_dir: Path, tmp_path_factory
) -> Iterator[BotProcess]:
    data = tmp_path_factory.mktemp("subs-data")
    shutil.copytree(sample_data_dir, data, symlinks=True, dirs_exist_ok=True)
    process = BotProcess(
        api, data, admin_ids=str(ADMIN), url_allowlist=site.netloc, feed_check_seconds="1"
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def last_id(api: FakeBotApi, chat_id: int) -> int:
    return max((m["message_id"] for m in api.bot_messages(chat_id)), default=0)


def pushes(api: FakeBotApi, chat_id: int, title: str) -> list[dict]:
    return [m for m in api.bot_messages(chat_id) if title in m["text"]]


def test_group_follows_topic_and_gets_a_feed_article_once(
    api: FakeBotApi, bot: BotProcess, site: NewsSite
) -> None:
    site.set_feed("/feed.xml", [UNRELATED], kind="rss", full_content=True)
    api.set_member_status(GROUP, MEMBER, "member")
    api.set_member_status(GROUP, ADMIN, "administrator")
    api.group_message(GROUP, MEMBER, "/follow Iran Russia security cooperation")
    refused = api.wait_for_message(GROUP, contains="Only this group's admins", timeout=15)
    api.group_message(GROUP, ADMIN, "/follow Iran Russia security cooperation")
    api.wait_for_message(
        GROUP, contains="Following", after_message_id=refused["message_id"], timeout=30
    )
    assert any(c.params.get("chat_id") == GROUP for c in api.calls("getChatAdministrators"))

    before = last_id(api, ADMIN)
    api.private_message(ADMIN, f"/addfeed {site.url('/feed.xml')} 5")
    api.wait_for_message(ADMIN, contains="Feed 1 added", after_message_id=before, timeout=15)
    # The first poll takes the unrelated article in; nothing is pushed for it.
    api.wait_for(lambda a: _article_count(bot.data) >= 14, timeout=30)
    # A new matching entry appears; a poll (here the CLI, as cron would run it) takes it in.
    site.set_feed("/feed.xml", [MATCHING, UNRELATED], kind="rss", full_content=True)
    result = run_cli("poll", data_dir=bot.data, env=bot.env)
    assert result.returncode == 0, result.stdout + result.stderr
    push = api.wait_for_message(GROUP, contains=MATCHING["title"], timeout=30)
    assert "<b>" not in push["text"] and any(e["type"] == "blockquote" for e in push["entities"])
    assert "security cooperation memorandum" in push["text"] or "cooperation" in push["text"]
    assert any(
        e["type"] == "text_link" and "iran-russia-drill" in e["url"] for e in push["entities"]
    )
    # Polling again changes nothing: still exactly one push, none for the cheese fair.
    result = run_cli("poll", data_dir=bot.data, env=bot.env)
    assert result.returncode == 0
    _canary(api, bot.data, GROUP, "supergroup")
    assert len(pushes(api, GROUP, MATCHING["title"])) == 1
    assert not pushes(api, GROUP, UNRELATED["title"])


def _article_count(data: Path) -> int:
    async def count() -> int:
        store = await Store.open(data / "newsbot.db")
        try:
            return (await store.stats()).articles
        finally:
            await store.close()

    return asyncio.run(count())


def test_following_unfollow_and_feeds_listing(api: FakeBotApi, bot: BotProcess) -> None:
    before = last_id(api, GROUP)
    api.group_message(GROUP, MEMBER, "/following")
    listing = api.wait_for_message(GROUP, after_message_id=before, timeout=15)
    assert "Iran Russia security cooperation" in listing["text"]
    before = last_id(api, ADMIN)
    api.private_message(ADMIN, "/feeds")
    feeds = api.wait_for_message(ADMIN, after_message_id=before, timeout=15)
    assert "feed.xml" in feeds["text"] and "last fetch" in feeds["text"]
    before = last_id(api, USER := 3030)
    api.private_message(USER, "/follow cheese fair")
    api.wait_for_message(USER, contains="Following", timeout=30)
    api.private_message(USER, "/unfollow 999")
    api.wait_for_message(USER, contains="does not follow #999", timeout=15)


def test_channel_source_posts_become_articles(api: FakeBotApi, bot: BotProcess) -> None:
    channel = -100999
    api.my_chat_member(channel, "channel", "administrator", by_user_id=ADMIN)
    before = last_id(api, ADMIN)
    api.channel_post(channel, "/addchannel", title="Harbour Notes (fictional)")
    api.wait_for_message(channel, contains="Asked the bot's admins", timeout=15)
    asked = api.wait_for_message(
        ADMIN, contains=f"/approvechannel {channel}", after_message_id=before, timeout=15
    )
    # Until a bot admin approves, the channel's posts are not news.
    early = api.channel_post(
        channel,
        "Harbour cranes repainted\nThe two old harbour cranes of Portvale were repainted "
        "bright green over the weekend, the port authority said.",
        title="Harbour Notes (fictional)",
    )
    api.wait_for(
        lambda a: (
            not any(
                u.get("channel_post", {}).get("message_id") == early["message_id"]
                for u in a.pending_updates()
            )
        ),
        timeout=15,
    )
    api.private_message(MEMBER, f"/approvechannel {channel}")  # not a bot admin
    api.wait_for_message(MEMBER, contains="only the bot's admins", timeout=15)
    api.private_message(ADMIN, f"/approvechannel {channel}")
    api.wait_for_message(
        ADMIN,
        contains="will now become articles",
        after_message_id=asked["message_id"],
        timeout=15,
    )
    post = api.channel_post(
        channel,
        "Ferry strike ends in Portvale\nDock workers in Portvale ended their three-day strike on "
        "Tuesday after the ferry company agreed to hire 40 more deckhands, the union said.",
        title="Harbour Notes (fictional)",
    )
    api.wait_for(lambda a: _article_text_contains(bot.data, "hire 40 more deckhands"), timeout=30)
    assert not _article_text_contains(bot.data, "repainted bright green")
    api.wait_for(lambda a: bot.indexed(), timeout=30)  # the background indexer caught up
    asked = api.private_message(
        ADMIN, "How many deckhands did the ferry company agree to hire in Portvale?"
    )
    answer = api.wait_for_message(
        ADMIN, contains="Harbour Notes", after_message_id=asked["message_id"], timeout=30
    )
    assert answer["text"].startswith("40")
    links = [e.get("url", "") for e in answer.get("entities", [])]
    assert f"https://t.me/c/999/{post['message_id']}" in links
    api.edited_channel_post(
        channel,
        post["message_id"],
        "Ferry strike ends in Portvale\nDock workers in Portvale ended their three-day strike on "
        "Tuesday after the ferry company agreed to hire 45 more deckhands, the union said.",
    )
    api.wait_for(lambda a: _article_text_contains(bot.data, "hire 45 more deckhands"), timeout=30)
    # A channel can follow a topic too (its commands are channel posts).
    api.channel_post(channel, "/follow harbour strikes", title="Harbour Notes (fictional)")
    api.wait_for_message(channel, contains="Following “harbour strikes”", timeout=30)


def _article_text_contains(data: Path, needle: str) -> bool:
    async def check() -> bool:
        store = await Store.open(data / "newsbot.db")
        try:
            return any(needle in a.text for a in await store.all_articles())
        finally:
            await store.close()

    return asyncio.run(check())


def _canary(api: FakeBotApi, data: Path, chat_id: int, chat_type: str) -> None:
    """Queue one more push behind everything sent to the chat and wait for it: the outbox
    sends in order, so by then any push that was going to arrive twice has arrived."""

    async def queue() -> str:
        async with await Store.open(data / "newsbot.db") as store:
            repo = SubscriptionRepo(store)
            await repo.upsert_chat(chat_id, chat_type, "test")
            sent = {d.article_id for d in await repo.pending_for(chat_id)}
            rows = await store.fetchall(
                "SELECT article_id FROM deliveries WHERE chat_id = ?", [chat_id]
            )
            sent |= {r[0] for r in rows}
            article = next(a for a in await store.all_articles() if a.id not in sent)
            await repo.finish_route(article.id, [(chat_id, None, None)])
            return article.title

    title = asyncio.run(queue())
    api.wait_for_message(chat_id, contains=title, timeout=30)


def _digest_done(data: Path, chat_id: int) -> bool:
    async def check() -> bool:
        async with await Store.open(data / "newsbot.db") as store:
            repo = SubscriptionRepo(store)
            info = await repo.chat(chat_id)
            return bool(info and info.last_digest_on) and not await repo.pending_for(chat_id)

    return asyncio.run(check())


async def _queue(data: Path, chat_id: int, chat_type: str, n: int) -> list[int]:
    store = await Store.open(data / "newsbot.db")
    try:
        repo = SubscriptionRepo(store)
        await repo.upsert_chat(chat_id, chat_type, "test")
        articles = [a.id for a in await store.all_articles()][:n]
        for article_id in articles:
            await repo.enqueue(chat_id, article_id, None, None)
        return articles
    finally:
        await store.close()


def test_outbox_survives_restart_and_sends_once(api: FakeBotApi, bot: BotProcess) -> None:
    chat = 4040
    api.private_message(chat, "/start")
    api.wait_for_message(chat, timeout=15)
    bot.stop()
    queued = asyncio.run(_queue(bot.data, chat, "private", 4))
    bot.start()
    api.wait_for(lambda a: len(a.bot_messages(chat)) >= 1 + len(queued), timeout=30)
    bot.stop()
    bot.start()
    _canary(api, bot.data, chat, "private")
    assert len(api.bot_messages(chat)) == 2 + len(queued)  # /start's reply, pushes, canary


def test_burst_of_429s_still_delivers_each_push_once(api: FakeBotApi, bot: BotProcess) -> None:
    chat = 6060
    api.private_message(chat, "/start")
    api.wait_for_message(chat, timeout=15)
    api.inject_fault("sendMessage", "429", count=6, retry_after=1)
    queued = asyncio.run(_queue(bot.data, chat, "private", 5))
    api.wait_for(lambda a: len(a.bot_messages(chat)) >= 1 + len(queued), timeout=60)
    _canary(api, bot.data, chat, "private")
    texts = [m["text"] for m in api.bot_messages(chat)][1:-1]
    assert len(texts) == len(queued) == len(set(texts))
    assert any(c.faulted for c in api.calls("sendMessage"))


def test_blocked_chat_is_paused_and_admins_told(api: FakeBotApi, bot: BotProcess) -> None:
    chat = 7070
    api.private_message(chat, "/start")
    api.wait_for_message(chat, timeout=15)
    api.block_chat(chat)
    before = last_id(api, ADMIN)
    asyncio.run(_queue(bot.data, chat, "private", 2))
    told = api.wait_for_message(
        ADMIN, contains=f"Paused pushes to chat {chat}", after_message_id=before, timeout=30
    )
    # Only one push was attempted: the second was dropped with the pause, not sent.
    assert len([c for c in api.calls("sendMessage") if c.params.get("chat_id") == chat]) == 2
    api.private_message(ADMIN, "/stats")
    stats = api.wait_for_message(ADMIN, after_message_id=told["message_id"], timeout=15)
    assert "pushes paused for" in stats["text"] and str(chat) in stats["text"]


def test_digest_mode_sends_one_message(api: FakeBotApi, bot: BotProcess) -> None:
    chat = 8080
    api.private_message(chat, "/digest 00:00")
    api.wait_for_message(chat, contains="Digest on", timeout=15)
    asyncio.run(_queue(bot.data, chat, "private", 3))
    digest = api.wait_for_message(chat, contains="Your news digest: 3 new articles", timeout=30)
    assert digest
    # The day's digest is recorded as done, nothing is left pending: no second one today.
    api.wait_for(lambda a: _digest_done(bot.data, chat), timeout=15)
    assert (
        len([m for m in api.bot_messages(chat) if "digest" in m["text"].lower()]) == 2
    )  # reply + digest
