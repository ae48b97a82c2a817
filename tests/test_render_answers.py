"""The three forms of an answer, as Telegram HTML and as plain text."""

from __future__ import annotations

from datetime import date

from bot.answering.models import QUOTES_ONLY_TEXT, Answer, Quote
from bot.telegram.render import plain_text, render_answer
from tests.fake_bot_api_html import parse_html

QUOTE = Quote(
    7,
    10,
    60,
    "Radan inked the deal with Zolotov <on> Wednesday & more.",
    "Iran & Russia",
    "IFP Media Wire",
    date(2023, 6, 29),
    "https://example.org/a?x=1&y=2",
)


def _text(html_parts: list[str]) -> str:
    return "\n".join(parse_html(part)[0] for part in html_parts)


def test_answer_with_quotes() -> None:
    answer = Answer("who?", "Ahmad Reza Radan", False, quotes=(QUOTE,), confidence=0.8)
    html = render_answer(answer)
    assert html[0].startswith("<b>Ahmad Reza Radan</b>")
    assert "Zolotov <on> Wednesday & more" in _text(html)
    assert answer.kind == "answer" and answer.as_json()["kind"] == "answer"


def test_quotes_only() -> None:
    answer = Answer("who?", "", False, quotes=(QUOTE,), confidence=0.2)
    html = render_answer(answer)
    assert html[0].startswith(f"<i>{QUOTES_ONLY_TEXT}</i>")
    assert "Radan inked the deal" in _text(html)
    assert plain_text(answer)[0].startswith(QUOTES_ONLY_TEXT)
    out = answer.as_json()
    assert (out["kind"], out["answer"], out["abstained"]) == ("quotes", "", False)
    assert out["confidence"] == 0.2 and out["quotes"][0]["start"] == 10


def test_not_found() -> None:
    answer = Answer("who?", "", True, corpus_first=date(2023, 5, 18), corpus_last=date(2023, 8, 25))
    html = render_answer(answer)
    assert "does not say" in _text(html) and "18 May 2023" in _text(html)
    assert answer.as_json()["kind"] == "not_found" and answer.as_json()["quotes"] == []
