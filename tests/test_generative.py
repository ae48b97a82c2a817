"""Generative answers: quote verification, passages, reply parsing, and the answerer
against a local OpenAI-compatible server (tests/servers/openai_compat.py). No model, no store."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime
from typing import Any

import httpx
import pytest

from bot.answering.engine import quote_of
from bot.answering.evidence import Evidence
from bot.answering.generative import (
    GenerativeAnswerer,
    LlmConfig,
    build_passages,
    parse_reply,
)
from bot.answering.models import Answer
from bot.answering.verify import locate_quote
from bot.settings import Settings
from corpus.models import Article
from tests.servers.openai_compat import OpenAICompatServer

FERRY = (
    "The Harbour Council of Port Mellin met on Tuesday evening. "
    "After a long debate, councillors voted 7\u20132 to approve the new ferry terminal. "
    "\u201cWe\u2019ve waited a decade for this,\u201d said Mayor Ilse Varga.\n"
    "Construction is expected to begin in March.  "
    "The terminal will cost 14 million crowns.\n\n"
    "Critics said the vote was rushed."
)
LIGHTHOUSE = (
    "The old lighthouse on Skerry Point reopened to visitors on Saturday. "
    "Volunteers spent three years restoring its brass lantern room. "
    "Entry costs four crowns for adults."
)
FOOTBALL = (
    "Mellin Rovers beat Dunhaven Athletic 3\u20131 on Sunday. "
    "Striker Tomas Kell scored twice in the second half. "
    "The win lifts Rovers to second place in the league."
)


def article(article_id: int, title: str, text: str) -> Article:
    """A hand-built stored article."""
    return Article(
        id=article_id,
        url=f"https://news.example/{article_id}",
        title=title,
        source="Mellin Gazette",
        authors=(),
        published_at=date(2024, 5, article_id),
        language="en",
        text=text,
        content_hash=f"hash-{article_id}",
        ingested_at=datetime(2024, 5, 10, 12, 0),
    )


ARTICLES = {
    1: article(1, "Council approves ferry terminal", FERRY),
    2: article(2, "Lighthouse reopens", LIGHTHOUSE),
    3: article(3, "Rovers win derby", FOOTBALL),
}


def evidence(article_id: int, sentence: str, score: float = 0.8) -> Evidence:
    """The evidence sentence ``sentence`` of an article."""
    a = ARTICLES[article_id]
    start = a.text.index(sentence)
    return Evidence(a, start, start + len(sentence), score, 0.9, 1.0, ())


VOTE = "After a long debate, councillors voted 7\u20132 to approve the new ferry terminal."
EVIDENCE = [
    evidence(1, VOTE, 0.9),
    evidence(2, "Volunteers spent three years restoring its brass lantern room.", 0.5),
    evidence(3, "Striker Tomas Kell scored twice in the second half.", 0.4),
]
QUESTION = "What did the Port Mellin council decide about the ferry terminal?"


def extractive(abstained: bool = False) -> Answer:
    """The extractive engine's answer (or abstention) the answerer falls back to."""
    quotes = () if abstained else (quote_of(EVIDENCE[0]),)
    more = () if abstained else (quote_of(EVIDENCE[1]),)
    return Answer(
        question=QUESTION,
        text="" if abstained else "approve the new ferry terminal",
        abstained=abstained,
        quotes=quotes,
        more_quotes=more,
        corpus_first=date(2024, 5, 1),
        corpus_last=date(2024, 5, 3),
        as_of=date(2024, 5, 10),
        confidence=0.0 if abstained else 0.9,
    )


def reply_with(answer: str, *quotes: tuple[Any, str]) -> str:
    """The JSON a well-behaved model would send."""
    return json.dumps({"answer": answer, "quotes": [{"passage": p, "text": t} for p, t in quotes]})


# --------------------------------------------------------------------------
# locate_quote
# --------------------------------------------------------------------------


def test_straight_quotes_match_typographic_ones_with_exact_offsets() -> None:
    quoted = '"We\'ve waited a decade for this," said Mayor Ilse Varga'
    span = locate_quote(FERRY, quoted)
    assert span is not None
    start, end = span
    assert FERRY[start:end] == "We\u2019ve waited a decade for this,\u201d said Mayor Ilse Varga"


def test_typographic_quotes_in_the_quote_match_straight_ones_in_the_text() -> None:
    text = 'He said "it\'s over now" and left the room at noon.'
    span = locate_quote(text, "He said \u201cit\u2019s over now\u201d and left")
    assert span is not None
    assert text[span[0] : span[1]] == 'He said "it\'s over now" and left'


def test_dashes_fold_to_hyphens() -> None:
    span = locate_quote(FERRY, "councillors voted 7-2 to approve the new ferry terminal.")
    assert span is not None
    assert (
        FERRY[span[0] : span[1]] == "councillors voted 7\u20132 to approve the new ferry terminal."
    )


def test_whitespace_runs_and_newlines_match_any_whitespace() -> None:
    quoted = "said Mayor Ilse Varga. Construction is expected to begin in March. The terminal"
    span = locate_quote(FERRY, quoted)
    assert span is not None
    got = FERRY[span[0] : span[1]]
    assert "\n" in got and "  " in got
    assert got.startswith("said Mayor") and got.endswith("The terminal")

    span2 = locate_quote(FERRY, "  million\n\t crowns.\n\nCritics   said the vote  ")
    assert span2 is not None
    assert FERRY[span2[0] : span2[1]] == "million crowns.\n\nCritics said the vote"


def test_offsets_round_trip_for_every_sentence() -> None:
    for text in (FERRY, LIGHTHOUSE, FOOTBALL):
        for sentence in text.replace("\n", " ").split(". "):
            sentence = sentence.strip()
            if len(sentence) < 12 or len(sentence.split()) < 3:
                continue
            span = locate_quote(text, sentence)
            assert span is not None, sentence
            expected = sentence.strip("\u201c\u201d")  # wrapping quotation marks are not kept
            assert " ".join(text[span[0] : span[1]].split()) == " ".join(expected.split())


def test_exact_copy_returns_its_own_offsets() -> None:
    start = FERRY.index(VOTE)
    assert locate_quote(FERRY, VOTE) == (start, start + len(VOTE))


def test_surrounding_quotation_marks_and_ellipses_are_ignored() -> None:
    start = FERRY.index("Construction is expected")
    expected = (start, start + len("Construction is expected to begin in March"))
    assert (
        locate_quote(FERRY, "\u201c...Construction is expected to begin in March\u2026\u201d")
        == expected
    )
    assert locate_quote(FERRY, "'Construction is expected to begin in March...'") == expected


def test_case_sensitive() -> None:
    assert locate_quote(FERRY, "the harbour council of port mellin met") is None
    assert locate_quote(FERRY, "The Harbour Council of Port Mellin met") == (0, 38)


def test_too_short_quotes_are_rejected() -> None:
    assert locate_quote(FERRY, "the vote") is None  # 2 words
    assert locate_quote(FERRY, "on Tuesday") is None  # 2 words, 10 chars
    assert locate_quote(FERRY, "met on it") is None  # 3 words, 9 chars
    assert locate_quote(FERRY, "\u201c  \u201d") is None
    assert locate_quote(FERRY, "") is None
    assert locate_quote(FERRY, "Critics said the") is not None  # 3 words, 16 chars


def test_not_found() -> None:
    assert locate_quote(FERRY, "councillors voted 8-1 to approve the new ferry terminal") is None
    assert locate_quote(FERRY, "The Harbour Council of Port Mellin met on Wednesday") is None
    # Words from two places glued together are not a quote.
    assert locate_quote(FERRY, "The Harbour Council approved the new ferry terminal") is None


def test_within_restricts_to_the_passage() -> None:
    text = (
        "The ferry leaves at noon every day. Other news follows. "
        "The ferry leaves at noon every day."
    )
    second = text.rindex("The ferry")
    assert locate_quote(text, "The ferry leaves at noon", within=(0, 34)) == (0, 24)
    assert locate_quote(text, "The ferry leaves at noon", within=(20, len(text))) == (
        second,
        second + 24,
    )
    # Found in the text, but not inside the range.
    assert locate_quote(text, "Other news follows.", within=(0, 34)) is None
    # A match may not run past the end of the range.
    assert locate_quote(text, "The ferry leaves at noon every day.", within=(0, 30)) is None
    assert locate_quote(text, "The ferry leaves", within=(50, 40)) is None


# --------------------------------------------------------------------------
# Passages and reply parsing
# --------------------------------------------------------------------------


def test_passages_are_numbered_verbatim_sentence_neighbourhoods() -> None:
    passages = build_passages(EVIDENCE, max_passages=6)
    assert [p.number for p in passages] == [1, 2, 3]
    assert [p.article.id for p in passages] == [1, 2, 3]
    first = passages[0]
    assert VOTE in first.text
    assert first.text == FERRY[first.start : first.end]
    assert first.text.startswith("The Harbour Council")  # one sentence of context before
    assert len(first.text) <= len(VOTE) + 400
    assert first.text.endswith(".")  # cut at a sentence boundary


def test_passages_merge_within_an_article_and_respect_the_limit() -> None:
    same = [EVIDENCE[0], evidence(1, "Construction is expected to begin in March.", 0.7)]
    passages = build_passages(same + EVIDENCE[1:], max_passages=6)
    assert [p.article.id for p in passages].count(1) == 1  # overlapping ranges merged
    assert len(build_passages(EVIDENCE, max_passages=2)) == 2
    assert build_passages([], max_passages=6) == []


def test_parse_reply_finds_json_in_fences_and_prose() -> None:
    plain = reply_with("Yes.", (1, "some exact words here"))
    assert parse_reply(plain) is not None
    fenced = parse_reply(f"Here you go:\n```json\n{plain}\n```\nHope that helps.")
    assert fenced is not None and fenced.answer == "Yes."
    assert fenced.quotes[0].passage == 1
    prose = parse_reply(f"Sure! {plain} Let me know.")
    assert prose is not None and prose.quotes[0].text == "some exact words here"
    numbered = parse_reply(
        '{"answer": "Yes.", "quotes": [{"passage": "[2]", "text": "abc def ghi"}]}'
    )
    assert numbered is not None and numbered.quotes[0].passage == 2
    assert parse_reply("no json here") is None
    assert parse_reply('{"something": "else"}') is None
    assert parse_reply('{"answer": 42, "quotes": []}') is None


def test_config_from_settings() -> None:
    assert LlmConfig.from_settings(Settings()) is None
    config = LlmConfig.from_settings(
        Settings(llm_base_url="http://127.0.0.1:1/v1/", llm_model="m", llm_timeout=3.0)
    )
    assert config is not None and config.timeout == 3.0
    assert config.endpoint == "http://127.0.0.1:1/v1/chat/completions"


# --------------------------------------------------------------------------
# GenerativeAnswerer against the local server
# --------------------------------------------------------------------------


@pytest.fixture
def llm() -> Iterator[OpenAICompatServer]:
    with OpenAICompatServer() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as c:
        yield c


def answerer(
    llm: OpenAICompatServer, client: httpx.AsyncClient | None, **config: Any
) -> GenerativeAnswerer:
    return GenerativeAnswerer(
        LlmConfig(base_url=llm.base_url, model="test-model", **config), client
    )


async def test_verified_quote_with_exact_offsets(llm: OpenAICompatServer, client) -> None:
    llm.reply = lambda request: (
        "```json\n"
        + reply_with(
            "The council voted 7-2 to approve the new ferry terminal.",
            (1, "councillors voted 7-2 to approve the new ferry terminal"),
            (1, '"We\'ve waited a decade for this," said Mayor Ilse Varga.'),
        )
        + "\n```"
    )
    fallback = extractive()
    got = await answerer(llm, client, api_key="sk-test").answer(QUESTION, EVIDENCE, fallback)

    assert got.method == "generative" and not got.abstained
    assert got.text == "The council voted 7-2 to approve the new ferry terminal."
    assert [q.text for q in got.quotes] == [
        "councillors voted 7\u20132 to approve the new ferry terminal",
        "We\u2019ve waited a decade for this,\u201d said Mayor Ilse Varga.",
    ]
    for q in got.quotes:
        assert FERRY[q.start : q.end] == q.text
        assert (q.article_id, q.title, q.source, q.url) == (
            1,
            "Council approves ferry terminal",
            "Mellin Gazette",
            "https://news.example/1",
        )
    # The fallback's own quote overlaps a verified one; its other quote is kept.
    assert [q.article_id for q in got.more_quotes] == [2]
    assert (got.corpus_first, got.corpus_last, got.as_of) == (
        fallback.corpus_first,
        fallback.corpus_last,
        fallback.as_of,
    )

    request = llm.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.json["model"] == "test-model" and request.json["temperature"] == 0
    assert [m["role"] for m in request.json["messages"]] == ["system", "user"]
    user = llm.user_message()
    assert QUESTION in user
    for n in (1, 2, 3):
        assert f"[{n}]" in user
    assert "[4]" not in user
    assert VOTE in user


async def test_no_authorization_header_without_key(llm: OpenAICompatServer, client) -> None:
    await answerer(llm, client).answer(QUESTION, EVIDENCE, extractive())
    assert "authorization" not in llm.requests[0].headers


async def test_works_without_an_injected_client(llm: OpenAICompatServer) -> None:
    llm.reply = lambda request: reply_with(
        "Three years.", (2, "Volunteers spent three years restoring its brass lantern room.")
    )
    got = await answerer(llm, None).answer(QUESTION, EVIDENCE, extractive(abstained=True))
    assert got.method == "generative" and got.text == "Three years."
    assert got.quotes[0].article_id == 2


async def test_invented_quote_dropped_real_one_kept(llm: OpenAICompatServer, client) -> None:
    llm.reply = lambda request: reply_with(
        "The terminal was approved.",
        (1, "The council approved the terminal unanimously after a short debate."),
        (1, "Construction is expected to begin in March."),
    )
    got = await answerer(llm, client).answer(QUESTION, EVIDENCE, extractive())
    assert got.method == "generative"
    assert [q.text for q in got.quotes] == ["Construction is expected to begin in March."]


async def test_only_invented_quotes_fall_back(llm: OpenAICompatServer, client) -> None:
    llm.mode = "invents_quotes"
    llm.reply = lambda request: reply_with("Approved.", (1, VOTE))
    fallback = extractive()
    assert await answerer(llm, client).answer(QUESTION, EVIDENCE, fallback) is fallback
    abstained = extractive(abstained=True)
    assert await answerer(llm, client).answer(QUESTION, EVIDENCE, abstained) is abstained


async def test_quote_citing_a_passage_not_given_is_dropped(llm: OpenAICompatServer, client) -> None:
    llm.reply = lambda request: reply_with(
        "Approved, 7-2.",
        (7, VOTE),
        (1, VOTE),
    )
    got = await answerer(llm, client).answer(QUESTION, EVIDENCE, extractive())
    assert got.method == "generative" and len(got.quotes) == 1
    assert got.quotes[0].text == VOTE

    llm.mode = "wrong_passage"  # every quote now cites passage 7 of 3
    fallback = extractive()
    assert await answerer(llm, client).answer(QUESTION, EVIDENCE, fallback) is fallback


async def test_quote_from_another_passage_than_cited_is_dropped(
    llm: OpenAICompatServer, client
) -> None:
    llm.reply = lambda request: reply_with("Approved.", (2, VOTE))
    fallback = extractive()
    assert await answerer(llm, client).answer(QUESTION, EVIDENCE, fallback) is fallback


@pytest.mark.parametrize("mode", ["garbage", "garbage_body", "http_500"])
async def test_bad_replies_fall_back(llm: OpenAICompatServer, client, mode: str) -> None:
    llm.mode = mode  # type: ignore[assignment]
    fallback = extractive()
    assert await answerer(llm, client).answer(QUESTION, EVIDENCE, fallback) is fallback
    assert len(llm.requests) == 1


async def test_null_content_falls_back(llm: OpenAICompatServer, client) -> None:
    llm.reply = lambda request: None
    fallback = extractive()
    assert await answerer(llm, client).answer(QUESTION, EVIDENCE, fallback) is fallback


async def test_unreachable_endpoint_falls_back(client) -> None:
    with OpenAICompatServer() as gone:
        base_url = gone.base_url
    config = LlmConfig(base_url=base_url, model="m", timeout=2.0)
    fallback = extractive()
    assert await GenerativeAnswerer(config, client).answer(QUESTION, EVIDENCE, fallback) is fallback


async def test_hang_falls_back_within_the_timeout(llm: OpenAICompatServer, client) -> None:
    llm.mode = "hang"
    llm.hang_seconds = 20
    fallback = extractive()
    started = time.monotonic()
    got = await answerer(llm, client, timeout=1.0).answer(QUESTION, EVIDENCE, fallback)
    assert got is fallback
    assert time.monotonic() - started < 2.0


async def test_hang_stop_is_prompt(client) -> None:
    server = OpenAICompatServer(mode="hang", hang_seconds=20).start()
    config = LlmConfig(base_url=server.base_url, model="m", timeout=0.5)
    await GenerativeAnswerer(config, client).answer(QUESTION, EVIDENCE, extractive())
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2.0


async def test_model_refusal_keeps_the_extractive_answer(llm: OpenAICompatServer, client) -> None:
    llm.reply = lambda request: '{"answer": "", "quotes": []}'
    fallback = extractive()
    assert await answerer(llm, client).answer(QUESTION, EVIDENCE, fallback) is fallback


async def test_model_refusal_abstains_when_the_engine_abstained(
    llm: OpenAICompatServer, client
) -> None:
    llm.reply = lambda request: 'I cannot tell. {"answer": "", "quotes": []}'
    fallback = extractive(abstained=True)
    got = await answerer(llm, client).answer(QUESTION, EVIDENCE, fallback)
    assert got.abstained and got.quotes == () and got.more_quotes == ()
    assert (got.corpus_first, got.corpus_last, got.as_of) == (
        fallback.corpus_first,
        fallback.corpus_last,
        fallback.as_of,
    )


async def test_long_answer_is_cut_and_no_evidence_skips_the_call(
    llm: OpenAICompatServer, client
) -> None:
    llm.reply = lambda request: reply_with("word " * 200, (1, VOTE))
    got = await answerer(llm, client).answer(QUESTION, EVIDENCE, extractive())
    assert len(got.text) <= 300 and got.text.endswith("\u2026")

    fallback = extractive(abstained=True)
    assert await answerer(llm, client).answer(QUESTION, [], fallback) is fallback
    assert len(llm.requests) == 1
