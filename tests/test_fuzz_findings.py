"""What the fuzzer found (benchmarks/fuzz_updates.py), one update each, through the real bot
process: ids typed as "²" or with 23 digits, lone surrogates (JSON's ``\\udXXX`` escapes),
entities that cut an emoji in half, and an apology posted into a channel. Each used to end
in the error handler ("Sorry, something went wrong"); now each gets its usage text or an
answer, and the bot's log holds no error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot_process import BotProcess
from tests.conftest import ROOT, run_cli
from tests.fake_bot_api import FakeBotApi

ADMIN = 4242
USER = 1001
GROUP = -1002000000001
CHANNEL = -1003000000001
SORRY = "something went wrong"


@pytest.fixture(scope="module")
def bot(api: FakeBotApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    data: Path = tmp_path_factory.mktemp("fuzz-findings")
    env = {"NEWSBOT_MODEL": "hash"}
    result = run_cli("ingest", str(ROOT / "corpus" / "samples"), data_dir=data, env=env)
    assert result.returncode == 0, result.stderr
    process = BotProcess(api, data, model="hash", reader_weights="off", admin_ids=str(ADMIN))
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _private(user_id: int) -> dict:
    return {"id": user_id, "type": "private", "first_name": "Ann"}


def _from(user_id: int) -> dict:
    return {"id": user_id, "is_bot": False, "first_name": "Ann"}


def _command(chat: dict, user_id: int | None, text: str, **extra: object) -> dict:
    command = text.split(" ", 1)[0]
    message = {
        "chat": chat,
        "date": 1_700_000_000,
        "text": text,
        "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
        **extra,
    }
    if user_id is not None:
        message["from"] = _from(user_id)
    return message


def _reply_to(api: FakeBotApi, chat_id: int, update: dict) -> str:
    """Send ``update`` and return the text of the bot's next message in the chat."""
    before = max((m["message_id"] for m in api.bot_messages(chat_id)), default=0)
    api.raw_update(update)
    return api.wait_for_message(chat_id, after_message_id=before, timeout=20)["text"]


@pytest.mark.parametrize(
    ("user_id", "text", "usage"),
    [
        (USER, "/unfollow ²", "Usage: /unfollow"),
        (USER, "/unfollow 99999999999999999999999", "Usage: /unfollow"),
        (USER, "/follow feed ²", "Following"),  # "feed ²" is then a topic, as typed
        (ADMIN, "/delete ²", "Usage: /delete"),
        (ADMIN, "/delete 99999999999999999999999", "Usage: /delete"),
        (ADMIN, "/removefeed ٣", "Usage: /removefeed"),
        (ADMIN, "/removefeed 99999999999999999999999", "Usage: /removefeed"),
        (ADMIN, "/addchannel ²", "Usage: /addchannel"),
        (ADMIN, "/approvechannel -99999999999999999999999", "Usage: /approvechannel"),
        (ADMIN, "/removechannel ²", "Usage: /removechannel"),
    ],
)
def test_ids_that_are_not_ids_get_the_usage(
    api: FakeBotApi, bot: BotProcess, user_id: int, text: str, usage: str
) -> None:
    reply = _reply_to(api, user_id, {"message": _command(_private(user_id), user_id, text)})
    assert usage in reply and SORRY not in reply


def test_lone_surrogates_are_replaced_not_fatal(api: FakeBotApi, bot: BotProcess) -> None:
    chat = _private(USER)
    reply = _reply_to(api, USER, {"message": _command(chat, USER, "/follow Zolotov \ud800")})
    assert "Following" in reply and "\ufffd" in reply
    question = {"chat": chat, "from": _from(USER), "date": 1_700_000_000, "text": "Zolotov \udfff?"}
    reply = _reply_to(api, USER, {"message": question})
    assert SORRY not in reply


def test_a_mention_with_broken_entities_is_still_read(api: FakeBotApi, bot: BotProcess) -> None:
    group = {"id": GROUP, "type": "supergroup", "title": "G"}
    mention = "@newsbot_test_bot"
    for text, entities in [
        (
            f"{mention} \ud83d who signed with Zolotov?",
            [{"type": "mention", "offset": 0, "length": 17}],
        ),
        (
            f"{mention} 😀 who signed with Zolotov?",
            [
                {"type": "hashtag", "offset": 19, "length": 1},  # half of the emoji
                {"type": "mention", "offset": 0, "length": 17},
            ],
        ),
    ]:
        message = {
            "chat": group,
            "from": _from(USER),
            "date": 1_700_000_000,
            "text": text,
            "entities": entities,
        }
        reply = _reply_to(api, GROUP, {"message": message})
        assert SORRY not in reply


def test_no_apology_is_posted_into_a_channel(api: FakeBotApi, bot: BotProcess) -> None:
    """An approved source channel's post with a lone surrogate becomes an article; and a
    channel never gets the error handler's apology (its readers would all see it)."""
    channel = {"id": CHANNEL, "type": "channel", "title": "Harbour Notes"}
    before = len(api.bot_messages(ADMIN))
    api.raw_update({"channel_post": _command(channel, None, "/addchannel")})
    api.wait_for(lambda a: len(a.bot_messages(ADMIN)) > before, timeout=20)
    _reply_to(
        api, ADMIN, {"message": _command(_private(ADMIN), ADMIN, f"/approvechannel {CHANNEL}")}
    )
    post = {
        "chat": channel,
        "sender_chat": channel,
        "date": 1_700_000_000,
        "text": "Radan inked the deal with Zolotov on Wednesday \ud800 in Moscow today",
    }
    api.raw_update({"channel_post": post})
    reply = _reply_to(api, CHANNEL, {"channel_post": _command(channel, None, "/ask Radan \ud800?")})
    assert SORRY not in reply
    assert not [m for m in api.bot_messages(CHANNEL) if SORRY in m["text"]]
    assert " ERROR " not in bot.log.read_text()
