"""The answer engine on the shipped sample corpus with the real packaged model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
import pytest_asyncio

from bot.answering.engine import AnswerEngine
from bot.answering.question import analyze
from bot.answering.timeparse import resolve_time
from bot.services import Services
from bot.settings import Settings
from corpus.text import normalize_for_hash
from tests.conftest import run_cli

SEED_QUOTE = (
    "Radan inked the deal with Russia’s National Guard chief Viktor Zolotov on the second day "
    "of his visit to Moscow on Wednesday."
)
AFTER_ALL = date(2023, 9, 1)
QUESTIONS = [
    json.loads(line)
    for line in (Path(__file__).parent / "fixtures" / "sample_questions.jsonl")
    .read_text()
    .splitlines()
    if line.strip()
]


# One model load for the module: the engine fixture and its tests share one event loop.
module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(sample_data_dir: Path) -> AsyncIterator[AnswerEngine]:
    services = await Services.open(Settings.from_env(data_dir=str(sample_data_dir)))
    try:
        yield services.answers()
    finally:
        await services.close()


@module_loop
async def test_who_signed_with_zolotov(engine: AnswerEngine) -> None:
    answer = await engine.answer("who signed with Zolotov?", AFTER_ALL)
    assert not answer.abstained
    assert answer.text == "Brigadier General Ahmad Reza Radan"
    first = answer.quotes[0]
    assert first.text == SEED_QUOTE
    assert first.source == "IFP Media Wire" and first.published_at == date(2023, 6, 29)


@module_loop
async def test_every_quote_is_a_verbatim_span(engine: AnswerEngine) -> None:
    stores = engine.store
    for item in QUESTIONS:
        answer = await engine.answer(item["question"], AFTER_ALL)
        for quote in answer.quotes + answer.more_quotes:
            article = await stores.get_article(quote.article_id)
            assert article is not None
            assert article.text[quote.start : quote.end] == quote.text


@module_loop
async def test_sample_questions_mostly_answered_correctly(engine: AnswerEngine) -> None:
    answerable = [q for q in QUESTIONS if q["answer"]]
    right = 0
    for item in answerable:
        answer = await engine.answer(item["question"], AFTER_ALL)
        if not answer.abstained and normalize_for_hash(item["answer"]) in normalize_for_hash(
            answer.text
        ):
            right += 1
    # Measured 20 of 28 at the time of writing. The answer ranker's weights are fitted
    # partly on these questions (benchmarks/train_answer_ranker.py), so this floor guards
    # against regressions; RealTime QA's held-out months measure generalization.
    assert right >= 18, f"{right} of {len(answerable)}"


@module_loop
@pytest.mark.parametrize(
    "item", [q for q in QUESTIONS if not q["answer"]], ids=lambda q: q["question"]
)
async def test_near_misses_and_off_topic_abstain(engine: AnswerEngine, item: dict) -> None:
    answer = await engine.answer(item["question"], AFTER_ALL)
    assert answer.abstained, (answer.text, [q.text for q in answer.quotes])
    assert answer.quotes == ()
    assert "does not say" in answer.not_found_text and "2023" in answer.not_found_text


@module_loop
async def test_as_of_hides_later_articles(engine: AnswerEngine) -> None:
    before = await engine.answer("who signed with Zolotov?", date(2023, 6, 1))
    assert before.abstained or all(q.published_at <= date(2023, 6, 1) for q in before.quotes)
    assert "Radan" not in before.text


def test_question_analysis() -> None:
    assert analyze("who signed with Zolotov?").qtype == "who"
    info = analyze("How many additional traffic officers did Radan deploy?")
    assert (info.qtype, info.focus, info.names) == ("how_many", "officers", ("Radan",))
    assert analyze("At which airport did Radan land when he arrived?").qtype == "which"
    assert analyze("What did Radan sign?").qtype == "what"


@pytest.mark.parametrize(
    ("question", "since", "until"),
    [
        ("what happened this week?", date(2023, 6, 22), date(2023, 6, 29)),
        ("who won yesterday?", date(2023, 6, 28), date(2023, 6, 29)),
        ("what happened last month?", date(2023, 5, 1), date(2023, 6, 7)),
        ("what happened in March?", date(2023, 3, 1), date(2023, 4, 7)),
        ("what happened in September?", date(2022, 9, 1), date(2022, 10, 7)),
        ("what happened on June 20, 2023?", date(2023, 6, 19), date(2023, 6, 27)),
        ("what happened on 2023-06-28?", date(2023, 6, 27), date(2023, 6, 29)),
    ],
)
def test_time_expressions(question: str, since: date, until: date) -> None:
    window = resolve_time(question, date(2023, 6, 29))
    assert window is not None and (window.since, window.until) == (since, until)


def test_no_time_expression() -> None:
    assert resolve_time("who signed with Zolotov?", date(2023, 6, 29)) is None


def test_cli_ask_json_and_batch(copy_data_dir: Path, tmp_path: Path) -> None:
    result = run_cli("ask", "--json", "who signed with Zolotov?", data_dir=copy_data_dir)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"question", "answer", "abstained", "quotes"}
    assert data["answer"] == "Brigadier General Ahmad Reza Radan" and data["abstained"] is False
    assert set(data["quotes"][0]) == {
        "text",
        "article_id",
        "start",
        "end",
        "title",
        "source",
        "published_at",
        "url",
    }
    batch = tmp_path / "questions.jsonl"
    batch.write_text(
        '{"id": "a", "question": "who signed with Zolotov?", "as_of": "2023-07-01"}\n'
        '{"id": "b", "question": "who signed with Zolotov?", "as_of": "2023-06-01"}\n'
        '{"id": "c", "question": "Who won the 2022 World Cup?"}\n'
    )
    result = run_cli("ask", "--json", "--batch", str(batch), data_dir=copy_data_dir)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["a", "b", "c"]
    assert lines[0]["answer"] == "Brigadier General Ahmad Reza Radan"
    assert "Radan" not in lines[1]["answer"]
    assert lines[2]["abstained"] is True and lines[2]["answer"] == ""


def test_cli_ask_text(copy_data_dir: Path) -> None:
    result = run_cli("ask", "who signed with Zolotov?", data_dir=copy_data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Brigadier General Ahmad Reza Radan")
    assert SEED_QUOTE in result.stdout and "IFP Media Wire" in result.stdout
