"""Replies within Telegram's limits, and their fallbacks, against the fake Bot API server.

Telegram counts a message's 4096-unit limit in UTF-16 code units of the text after entity
parsing; it refuses a bad inline button and a malformed HTML text. Each test here drives
python-telegram-bot's real ``Bot`` against :class:`FakeBotApi`, which refuses the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import date
from types import SimpleNamespace

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, Forbidden
from telegram.ext import Application, ApplicationBuilder, CommandHandler

from bot.answering.models import Answer, Quote
from bot.settings import Settings
from bot.telegram import render, replies
from bot.telegram.context import BotState
from bot.telegram.follow import on_following
from bot.telegram.ratelimit import UserRateLimiter
from bot.telegram.render import MESSAGE_LIMIT, pack, plain_text, render_answer
from bot.telegram.replies import reply_rendered
from bot.telegram.sources import on_feeds
from corpus.feed_repo import FeedRepo
from corpus.store import Store
from corpus.subscription_repo import SubscriptionRepo
from tests.fake_bot_api import FakeBotApi
from tests.fake_bot_api_html import parse_html, utf16_len

ADMIN = 7001
EMOJI = "😀"  # one code point, two UTF-16 code units


@pytest.fixture
def api() -> Iterator[FakeBotApi]:
    """A fresh fake Bot API server per test: faults and messages never leak between tests."""
    with FakeBotApi() as server:
        yield server


@pytest_asyncio.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    """An initialized PTB Bot talking to the fake server."""
    async with Bot(api.token, base_url=api.base_url) as tg_bot:
        yield tg_bot


def _incoming(api: FakeBotApi, bot: Bot, chat_id: int, text: str = "a question") -> Message:
    """A user's message, as the bot receives it (so ``reply_*`` work on it)."""
    return Message.de_json(api.private_message(chat_id, text), bot)


def _texts(api: FakeBotApi, chat_id: int) -> list[str]:
    return [m["text"] for m in api.bot_messages(chat_id)]


def _assert_within_limit(api: FakeBotApi, chat_id: int) -> None:
    for text in _texts(api, chat_id):
        assert 0 < utf16_len(text) <= MESSAGE_LIMIT


def _quote(i: int, text: str) -> Quote:
    return Quote(
        i, 0, len(text), text, f"Title {i}", "Wire", date(2024, 1, i), f"https://ex.org/{i}"
    )


def _emoji_sentences(n: int, tag: str) -> str:
    """``n`` short sentences, each full of emoji (so UTF-16 length is about twice len)."""
    return " ".join(f"{tag}{i} {EMOJI * 12} done." for i in range(n))


# ---------------------------------------------------------------- the splitter (pure)
def test_emoji_answer_splits_by_utf16_units_after_parsing() -> None:
    """Three quotes of 1,500 emoji each: 3,000 UTF-16 units apiece, counted as 1,500 today."""
    quotes = tuple(_quote(i, EMOJI * 1500) for i in (1, 2, 3))
    answer = Answer("q?", "An answer", False, quotes=quotes, confidence=0.9)
    parts = render_answer(answer)
    texts = [parse_html(p)[0] for p in parts]  # raises if a tag was cut
    assert all(utf16_len(t) <= MESSAGE_LIMIT for t in texts)
    assert sum(t.count(EMOJI) for t in texts) == 4500
    assert all(utf16_len(p) <= MESSAGE_LIMIT for p in plain_text(answer))


def test_one_overlong_paragraph_splits_at_sentences_with_tags_reopened() -> None:
    """A single block longer than a message, inside <blockquote><b>, no paragraph breaks."""
    body = _emoji_sentences(300, "s")
    block = f'<blockquote><b>{body}</b></blockquote>\n— <a href="https://ex.org/x">Wire</a>'
    parts = pack(["<i>head</i>", block])
    parsed = [parse_html(p) for p in parts]  # raises if a tag was cut or left open
    texts = [text.strip() for text, _ in parsed]
    assert all(utf16_len(t) <= MESSAGE_LIMIT for t in texts)
    body_parts = [(t, e) for t, e in zip(texts, parsed, strict=True) if "done." in t]
    assert len(body_parts) >= 3  # about 10,800 UTF-16 units of quote
    for _, (_, entities) in body_parts:
        assert {"blockquote", "bold"} <= {e["type"] for e in entities}
    # every cut falls after a sentence, none inside one
    assert all(t.endswith("done.") for t, _ in body_parts[:-1])
    joined = " ".join(texts)
    assert joined.count("done.") == 300 and all(f"s{i} " in joined for i in range(300))
    assert texts[-1].endswith("— Wire") and parsed[-1][1][-1]["type"] == "text_link"


def test_a_word_longer_than_a_message_is_cut_between_code_points() -> None:
    html = "<b>" + EMOJI * 5000 + "&amp;</b>"
    parts = render.split_html(html)
    texts = [parse_html(p)[0] for p in parts]
    assert all(utf16_len(t) <= MESSAGE_LIMIT for t in texts)
    assert "".join(texts) == EMOJI * 5000 + "&"
    assert render.visible_length(html) == 10001


def _styled(html: str) -> list[tuple[str, frozenset[str]]]:
    """Each visible non-space character of ``html`` with the formatting that covers it."""
    text, entities = parse_html(html)
    out, offset = [], 0
    for ch in text:
        covering = frozenset(
            e["type"] + e.get("url", "")
            for e in entities
            if e["offset"] <= offset < e["offset"] + e["length"]
        )
        if not ch.isspace():
            out.append((ch, covering))
        offset += utf16_len(ch)
    return out


_LEAF = st.lists(
    st.sampled_from(["a", "b", "word", " ", "\n", "\n\n", EMOJI, "&amp;", "&lt;", ". ", "é"]),
    max_size=12,
).map("".join)
_HTML = st.recursive(
    _LEAF,
    lambda inner: st.tuples(
        st.sampled_from(["b", "i", "u", "code", "blockquote", 'a href="https://e.org/?a=1&amp;b"']),
        st.lists(inner, min_size=1, max_size=4).map("".join),
    ).map(lambda t: f"<{t[0]}>{t[1]}</{t[0].split()[0]}>"),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None)
@given(html=st.lists(_HTML, min_size=1, max_size=5).map("".join), limit=st.integers(2, 60))
def test_split_html_keeps_every_character_and_its_formatting(html: str, limit: int) -> None:
    """Any cut of any nesting: each piece is valid, within the limit, and loses nothing."""
    pieces = render.split_html(html, limit)
    for piece in pieces:
        text, _ = parse_html(piece)  # raises if a tag was cut or left open
        assert 0 < utf16_len(text) <= limit and text.strip()
    assert [c for p in pieces for c in _styled(p)] == _styled(html)


def test_plain_version_keeps_links_and_quotes() -> None:
    html = '<b>A &amp; B</b>\n<blockquote>said &lt;x&gt;</blockquote>\n— <a href="https://e.org/?a=1&amp;b=2">Wire</a>'
    plain = render.html_to_plain(html)
    assert "A & B" in plain and "said <x>" in plain
    assert "https://e.org/?a=1&b=2" in plain and "<b>" not in plain


# ---------------------------------------------------------------- reply_rendered
async def test_emoji_answer_is_delivered_whole(api: FakeBotApi, bot: Bot) -> None:
    message = _incoming(api, bot, 11)
    quotes = tuple(_quote(i, f"Q{i} " + EMOJI * 1490) for i in (1, 2, 3))
    answer = Answer("q?", "An answer", False, quotes=quotes, confidence=0.9)
    await reply_rendered(message, render_answer(answer), plain_text(answer))
    texts = _texts(api, 11)
    assert len(texts) >= 2
    _assert_within_limit(api, 11)
    joined = "\n".join(texts)
    assert all(f"Q{i} " in joined for i in (1, 2, 3)) and joined.count(EMOJI) == 3 * 1490
    assert not [c for c in api.calls("sendMessage") if c.status != 200]


async def test_html_refused_in_second_of_three_parts(api: FakeBotApi, bot: Bot) -> None:
    """Part 1 goes once as HTML; parts 2 and 3 follow as plain text, never part 1 again."""
    message = _incoming(api, bot, 12)
    parts = ["<b>Part one</b>", "Part two: AT&T is not escaped", "<i>Part three</i> &amp; end"]
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("More", callback_data="more:1")]])
    last = await reply_rendered(message, parts, ["plain one", "plain two"], markup)
    texts = _texts(api, 12)
    assert texts == ["Part one", "Part two: AT&T is not escaped", "Part three & end"]
    sent = api.bot_messages(12)
    assert sent[0]["entities"][0]["type"] == "bold"
    assert not any(e["type"] == "italic" for e in sent[2].get("entities", []))
    assert sent[2]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "more:1"
    assert last is not None and last.message_id == sent[2]["message_id"]


async def test_html_refused_in_first_part_uses_the_given_plain_text(
    api: FakeBotApi, bot: Bot
) -> None:
    message = _incoming(api, bot, 13)
    api.inject_fault("sendMessage", "bad_entities")
    await reply_rendered(message, ["<b>one</b>", "<b>two</b>"], ["plain one", "plain two"])
    assert _texts(api, 13) == ["plain one", "plain two"]


async def test_bad_button_is_dropped_and_the_reply_still_arrives(api: FakeBotApi, bot: Bot) -> None:
    message = _incoming(api, bot, 14)
    markup = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Source", url="javascript:alert(1)")],
            [InlineKeyboardButton("More", callback_data="more:7")],
        ]
    )
    await reply_rendered(message, ["<b>The answer</b>"], None, markup)
    [sent] = api.bot_messages(14)
    assert sent["text"] == "The answer"
    more = {"text": "More", "callback_data": "more:7"}
    assert sent["reply_markup"]["inline_keyboard"] == [[more]]


async def test_refused_markup_is_dropped_altogether(api: FakeBotApi, bot: Bot) -> None:
    message = _incoming(api, bot, 15)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("More", callback_data="m" * 65)]])
    await reply_rendered(message, ["<b>one</b>", "<b>two</b>"], None, markup)
    sent = api.bot_messages(15)
    assert [m["text"] for m in sent] == ["one", "two"] and "reply_markup" not in sent[1]
    refused = [c for c in api.calls("sendMessage") if c.status == 400]
    assert refused and "BUTTON_DATA_INVALID" in str(refused[0].response)


async def test_too_long_answer_is_split_further(api: FakeBotApi, bot: Bot) -> None:
    """Telegram counts more than we did (our count and its disagree): split and send."""
    message = _incoming(api, bot, 16)
    body = "\n\n".join(f"<b>Paragraph {i}</b> " + "word " * 60 for i in range(10))
    api.inject_fault("sendMessage", "too_long")
    await reply_rendered(message, [body], None)
    texts = _texts(api, 16)
    assert len(texts) >= 2
    joined = "\n".join(texts)
    assert all(joined.count(f"Paragraph {i} ") == 1 for i in range(10))


# ---------------------------------------------------------------- send_html (pushes, digests)
async def test_send_html_falls_back_like_replies(api: FakeBotApi, bot: Bot) -> None:
    api.private_message(17, "hi")
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Read", url="ftp://ex.org/a")]])
    first = await replies.send_html(bot, 17, "<b>Digest</b>\n\n" + "x" * 5000, reply_markup=markup)
    sent = api.bot_messages(17)
    assert first.message_id == sent[0]["message_id"] and len(sent) >= 2
    assert "".join(m["text"] for m in sent).count("x") == 5000
    assert all("reply_markup" not in m for m in sent)
    _assert_within_limit(api, 17)

    api.clear_calls()
    messages = await replies.send_html_parts(bot, 17, ["<b>a</b>", "b <c", "<i>c</i>"])
    assert [m.text for m in messages] == ["a", "b <c", "c"]
    assert [c.params.get("parse_mode") for c in api.calls("sendMessage")] == [
        "HTML",
        "HTML",
        None,
        None,
    ]


async def test_send_html_raises_what_it_cannot_fix(api: FakeBotApi, bot: Bot) -> None:
    api.private_message(18, "hi")
    api.block_chat(18)
    with pytest.raises(Forbidden, match="blocked"):
        await replies.send_html(bot, 18, "<b>x</b>")
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await replies.send_html(bot, 999_999, "<b>x</b>")


# ---------------------------------------------------------------- the fake server
async def test_fake_refuses_like_telegram(api: FakeBotApi, bot: Bot) -> None:
    api.private_message(19, "hi")
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(19, "<b>" + EMOJI * 2049 + "</b>", parse_mode="HTML")
    assert (await bot.send_message(19, "<b>" + EMOJI * 2048 + "</b>", parse_mode="HTML")).text
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(19, "<b>x</i>", parse_mode="HTML")
    for url in ("javascript:alert(1)", "ftp://ex.org/a", "example", "https://"):
        bad = InlineKeyboardMarkup([[InlineKeyboardButton("x", url=url)]])
        with pytest.raises(BadRequest, match="(?i)BUTTON_URL_INVALID"):
            await bot.send_message(19, "x", reply_markup=bad)
    too_big = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(19, "x", reply_markup=too_big)
    good = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton("a", url="https://ex.org/a"),
                InlineKeyboardButton("b", url="tg://resolve?domain=x"),
            ],
            [InlineKeyboardButton("c", callback_data="é" * 32)],
        ]
    )
    sent = await bot.send_message(19, "ok", reply_markup=good)
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.edit_message_reply_markup(19, sent.message_id, reply_markup=too_big)
    assert sent.reply_markup == good


# ---------------------------------------------------------------- /feeds and /following
@pytest_asyncio.fixture
async def app(api: FakeBotApi, store: Store) -> AsyncIterator[Application]:
    """The two list commands' handlers in an in-process application polling the fake."""
    application = ApplicationBuilder().token(api.token).base_url(api.base_url).build()
    application.bot_data["state"] = BotState(
        settings=Settings(admin_ids=frozenset({ADMIN})),
        limiter=UserRateLimiter(0),
        services=SimpleNamespace(store=store),  # type: ignore[arg-type]
    )
    application.add_handler(CommandHandler("feeds", on_feeds))
    application.add_handler(CommandHandler("following", on_following))
    await application.initialize()
    await application.start()
    assert application.updater is not None
    await application.updater.start_polling(timeout=1, poll_interval=0)
    try:
        yield application
    finally:
        await application.updater.stop()
        await application.stop()
        await application.shutdown()


async def _wait_for_text(api: FakeBotApi, chat_id: int, needle: str) -> list[str]:
    """Wait until the bot's messages to ``chat_id`` together contain ``needle``."""
    await asyncio.to_thread(api.wait_for, lambda s: needle in "\n".join(_texts(s, chat_id)), 10.0)
    return _texts(api, chat_id)


async def test_feeds_with_60_long_urls_arrive_whole(
    api: FakeBotApi, app: Application, store: Store
) -> None:
    repo = FeedRepo(store)
    urls = [f"https://news{i}.example.org/{'section/' * 25}feed{i}.xml" for i in range(60)]
    for url in urls:
        await repo.add(url, 30, ADMIN)
    api.private_message(ADMIN, "/feeds")
    texts = await _wait_for_text(api, ADMIN, urls[-1])
    assert len(texts) >= 2
    _assert_within_limit(api, ADMIN)
    joined = "\n".join(texts)
    assert all(joined.count(url) == 2 for url in urls)  # its title (none: the url) and url
    assert all(m.get("entities") for m in api.bot_messages(ADMIN))  # still HTML (bold ids)


async def test_following_with_long_emoji_topics_arrives_whole(
    api: FakeBotApi, app: Application, store: Store
) -> None:
    chat = 7002
    repo = SubscriptionRepo(store)
    await repo.upsert_chat(chat, "private", "Ann")
    topics = [f"topic {i} " + EMOJI * 90 for i in range(50)]
    for topic in topics:
        await repo.add(chat, "topic", query=topic)
    api.private_message(chat, "/following")
    texts = await _wait_for_text(api, chat, "Delivery: instant")
    assert len(texts) >= 2
    _assert_within_limit(api, chat)
    joined = "\n".join(texts)
    assert all(joined.count(f"“{topic}”") == 1 for topic in topics)
