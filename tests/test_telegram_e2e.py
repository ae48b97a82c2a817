"""End to end: the real ``newsbot run`` process against a local Bot API server.

One bot process serves the whole module (starting it loads the model, ~6 s). Each test
acts as users in private chats, groups and channels, and injects faults.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.bot_process import BotProcess
from tests.fake_bot_api import FakeBotApi
from tests.servers.news_site import NewsSite

ADMIN = 4242
USER = 1001
SEED_QUOTE = "Radan inked the deal with Russia’s National Guard chief Viktor Zolotov"


@pytest.fixture(scope="module")
def bot(
    api: FakeBotApi, site: NewsSite, sample_data_dir: Path, tmp_path_factory
) -> Iterator[BotProcess]:
    data = tmp_path_factory.mktemp("bot-data")
    shutil.copytree(sample_data_dir, data, symlinks=True, dirs_exist_ok=True)
    process = BotProcess(
        api, data, admin_ids=str(ADMIN), url_allowlist=site.netloc, user_rate_per_minute="30"
    )
    process.start()
    try:
        yield process
    finally:
        code = process.stop()
        assert code in (0, -2, -9, 130), process.log_tail()


def last_id(api: FakeBotApi, chat_id: int) -> int:
    messages = api.bot_messages(chat_id)
    return max((m["message_id"] for m in messages), default=0)


def test_private_question_gets_quoted_answer(api: FakeBotApi, bot) -> None:
    asked = api.private_message(USER, "who signed with Zolotov?")
    reply = api.wait_for_message(USER, contains="Radan", timeout=30)
    assert "Brigadier General Ahmad Reza Radan" in reply["text"]
    assert SEED_QUOTE in reply["text"]
    assert "IFP Media Wire" in reply["text"]
    assert reply["reply_to_message"]["message_id"] == asked["message_id"]
    kinds = {e["type"] for e in reply.get("entities", [])}
    # A short answer in bold, or (reader not sure enough) the quotes introduced in italics.
    assert "blockquote" in kinds and kinds & {"bold", "italic"}
    assert any(c.params.get("action") == "typing" for c in api.calls("sendChatAction"))


def test_a_sure_short_answer_is_bold_above_its_quote(api: FakeBotApi, bot) -> None:
    api.private_message(USER + 20, "Which club signed Iranian striker Arash Nouri?")
    reply = api.wait_for_message(USER + 20, contains="Yauza", timeout=30)
    assert reply["text"].startswith("FC Yauza Moscow\n")
    bold = [e for e in reply["entities"] if e["type"] == "bold"]
    assert bold and bold[0]["offset"] == 0 and bold[0]["length"] == len("FC Yauza Moscow")
    assert "have signed Iranian striker Arash Nouri" in reply["text"]


def test_more_sources_button(api: FakeBotApi, bot) -> None:
    api.private_message(USER + 1, "who signed with Zolotov?")
    reply = api.wait_for_message(USER + 1, contains="Radan", timeout=30)
    buttons = [b for row in reply["reply_markup"]["inline_keyboard"] for b in row]
    more = [b for b in buttons if b.get("callback_data", "").startswith("more:")]
    assert more, buttons
    before = last_id(api, USER + 1)
    query = api.callback_query(USER + 1, USER + 1, reply["message_id"], more[0]["callback_data"])
    extra = api.wait_for_message(USER + 1, after_message_id=before, timeout=15)
    assert "—" in extra["text"]
    api.wait_for(lambda a: a.callback_answer(query), timeout=10)


def test_unanswerable_question_abstains(api: FakeBotApi, bot) -> None:
    api.private_message(USER + 2, "Who won the 2022 World Cup?")
    reply = api.wait_for_message(USER + 2, timeout=30)
    assert "does not say" in reply["text"]
    assert "2023" in reply["text"]


def test_group_mention_reply_and_ask(api: FakeBotApi, bot) -> None:
    group = -100777
    api.group_message(group, USER, "hello everyone")  # not for the bot: ignored
    api.group_message(group, USER, "@newsbot_test_bot who signed with Zolotov?")
    first = api.wait_for_message(group, contains="Radan", timeout=30)
    api.group_message(
        group,
        USER,
        "Where did Patrushev chair the meeting on forest fire prevention?",
        reply_to_message_id=first["message_id"],
    )
    second = api.wait_for_message(
        group, contains="Petrozavodsk", after_message_id=first["message_id"], timeout=30
    )
    api.group_message(
        group, USER, "/ask@newsbot_test_bot How many objects are displayed in the new Caspian hall?"
    )
    third = api.wait_for_message(
        group, contains="1,200", after_message_id=second["message_id"], timeout=30
    )
    assert third["reply_to_message"]["text"].startswith("/ask")
    texts = [m["text"] for m in api.bot_messages(group)]
    assert len(texts) == 3, texts  # "hello everyone" got no answer


def test_channel_post_ask(api: FakeBotApi, bot) -> None:
    channel = -100888
    api.channel_post(channel, "/ask who signed with Zolotov?")
    reply = api.wait_for_message(channel, contains="Radan", timeout=30)
    assert SEED_QUOTE in reply["text"]


def test_start_help_about(api: FakeBotApi, bot) -> None:
    api.private_message(USER + 3, "/start")
    start = api.wait_for_message(USER + 3, timeout=15)
    assert "Ask me about the news" in start["text"]
    api.private_message(USER + 3, "/about")
    about = api.wait_for_message(USER + 3, after_message_id=start["message_id"], timeout=15)
    assert "13" in about["text"] and "IFP Media Wire" in about["text"]
    defaults = api.commands()
    assert {c["command"] for c in defaults} == {
        "ask",
        "about",
        "help",
        "follow",
        "following",
        "unfollow",
        "digest",
    }
    admin_scope = {"type": "chat", "chat_id": ADMIN}
    assert "reindex" in {c["command"] for c in api.commands(admin_scope)}


def test_admin_commands_refused_for_non_admins(api: FakeBotApi, bot) -> None:
    for command in ("/stats", "/reindex", "/delete 1", "/ingest http://example.org/"):
        before = last_id(api, USER + 4)
        api.private_message(USER + 4, command)
        reply = api.wait_for_message(USER + 4, after_message_id=before, timeout=15)
        assert "only the bot's admins" in reply["text"]


def test_admin_stats_and_reindex_while_answering(api: FakeBotApi, bot) -> None:
    api.private_message(ADMIN, "/stats")
    stats = api.wait_for_message(ADMIN, contains="articles", timeout=15)
    assert "chunks" in stats["text"]
    before = last_id(api, ADMIN)
    # Slow progress edits keep the re-index running while another user asks.
    api.inject_fault("editMessageText", "slow", count=1, delay=1.5)
    api.private_message(ADMIN, "/reindex")
    api.private_message(ADMIN, "/reindex")
    api.private_message(USER + 5, "who signed with Zolotov?")
    api.wait_for_message(USER + 5, contains="Radan", timeout=30)
    api.wait_for_message(ADMIN, contains="already running", after_message_id=before, timeout=15)
    done = api.wait_for_message(
        ADMIN, contains="Re-index done", after_message_id=before, timeout=60
    )
    assert "chunks" in done["text"]


def test_admin_ingest_url_and_delete(api: FakeBotApi, bot, site: NewsSite) -> None:
    site.set_page(
        "/news/ferry.html",
        site.article_html(
            "Lake ferry company orders two electric boats",
            [
                "The Lake Orm Ferry Company ordered two electric ferries from the Kestrel yard"
                " on Monday, its director Hanna Lind said.",
                "The boats will carry 120 passengers each and enter service in 2025,"
                " replacing diesel vessels built in 1979.",
            ],
            author="Test Desk",
            published=datetime(2023, 8, 28, 9, 0, tzinfo=UTC),
            site_name="Test News (fictional)",
        ),
    )
    before = last_id(api, ADMIN)
    api.private_message(ADMIN, f"/ingest {site.url('/news/ferry.html')}")
    added = api.wait_for_message(
        ADMIN, contains="Added article", after_message_id=before, timeout=60
    )
    article_id = int(added["text"].split("Added article ")[1].split(":")[0])
    api.wait_for(lambda a: bot.indexed(), timeout=30)  # the background indexer caught up
    before = last_id(api, ADMIN)
    api.private_message(ADMIN, "Who ordered two electric ferries from the Kestrel yard?")
    api.wait_for_message(
        ADMIN, contains="Lake Orm Ferry Company", after_message_id=before, timeout=30
    )

    before = last_id(api, ADMIN)
    api.private_message(ADMIN, "/ingest http://127.0.0.1:9/secret")
    refused = api.wait_for_message(ADMIN, after_message_id=before, timeout=15)
    assert "could not fetch" in refused["text"]

    before = last_id(api, ADMIN)
    api.private_message(ADMIN, f"/delete {article_id}")
    api.wait_for_message(
        ADMIN, contains=f"Deleted article {article_id}", after_message_id=before, timeout=15
    )
    before = last_id(api, ADMIN)
    api.private_message(ADMIN, "Who ordered two electric ferries from the Kestrel yard?")
    gone = api.wait_for_message(ADMIN, after_message_id=before, timeout=30)
    assert "does not say" in gone["text"]


def test_429_is_retried_after_retry_after(api: FakeBotApi, bot) -> None:
    api.inject_fault("sendMessage", "429", count=1, retry_after=1)
    api.private_message(USER + 6, "who signed with Zolotov?")
    reply = api.wait_for_message(USER + 6, contains="Radan", timeout=30)
    faulted = [c for c in api.calls("sendMessage") if c.faulted]
    assert faulted and faulted[-1].time <= reply["date"] + 1
    assert reply


def test_500_then_the_user_still_gets_a_reply(api: FakeBotApi, bot) -> None:
    api.inject_fault("sendMessage", "500", count=1)
    api.private_message(USER + 7, "who signed with Zolotov?")
    reply = api.wait_for_message(USER + 7, timeout=30)
    assert "went wrong" in reply["text"] or "Radan" in reply["text"]
    assert "Traceback" not in reply["text"]


def test_rejected_entities_fall_back_to_plain_text(api: FakeBotApi, bot) -> None:
    api.inject_fault("sendMessage", "bad_entities", count=1)
    api.private_message(USER + 8, "who signed with Zolotov?")
    reply = api.wait_for_message(USER + 8, contains="Radan", timeout=30)
    assert SEED_QUOTE in reply["text"]
    assert not reply.get("entities") or all(e["type"] != "blockquote" for e in reply["entities"])


def test_slow_api_and_long_question(api: FakeBotApi, bot) -> None:
    api.inject_fault("sendMessage", "slow", count=1, delay=2.0)
    api.private_message(USER + 9, "who signed with Zolotov? " + "please " * 200)
    reply = api.wait_for_message(USER + 9, timeout=40)
    assert "first 500 characters" in reply["text"]


def test_rate_limit_is_friendly(api: FakeBotApi, bot) -> None:
    for _ in range(32):
        api.private_message(USER + 10, "Who won the 2022 World Cup?")
    api.wait_for_message(USER + 10, contains="faster than I can read", timeout=60)


def test_quotes_only_answer_when_no_short_answer_is_sure(
    sample_data_dir: Path, tmp_path: Path
) -> None:
    """The third form: strong evidence but no short answer (here: the reader turned off)."""
    data = tmp_path / "data"
    shutil.copytree(sample_data_dir, data, symlinks=True)
    with FakeBotApi() as api:
        process = BotProcess(api, data, reader_weights="off")
        process.start()
        try:
            api.private_message(USER, "who signed with Zolotov?")
            reply = api.wait_for_message(USER, contains="Here is what the articles say", timeout=30)
            assert "Zolotov" in reply["text"] and "IFP Media Wire" in reply["text"]
            kinds = {e["type"] for e in reply.get("entities", [])}
            assert {"italic", "blockquote"} <= kinds and "bold" not in kinds
        finally:
            code = process.stop()
        assert code in (0, -2, -9, 130), process.log_tail()
