"""The answer engine on the shipped sample corpus with the real packaged model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
import pytest_asyncio

from bot.answering.engine import AnswerEngine, Finding, Thresholds, decide
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
NOURI = "Which club signed Iranian striker Arash Nouri?"
RIGHT_FLOOR = 14  # measured 15 of 28 with the shipped weights (the old ranker: 20)
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
        yield await services.answers()
    finally:
        await services.close()


@module_loop
async def test_who_signed_with_zolotov(engine: AnswerEngine) -> None:
    answer = await engine.answer("who signed with Zolotov?", AFTER_ALL)
    # The reader names Radan; whether it says so or shows the quotes alone depends on
    # its confidence against the shipped threshold.
    assert answer.kind in ("answer", "quotes"), answer
    assert SEED_QUOTE in [q.text for q in answer.quotes + answer.more_quotes]
    first = answer.quotes[0]
    assert first.source == "IFP Media Wire" and first.published_at == date(2023, 6, 29)
    finding = (await engine.trace("who signed with Zolotov?", AFTER_ALL)).finding
    assert finding is not None and "Ahmad Reza Radan" in finding.text
    assert finding.text in first.text or answer.kind == "quotes"


@module_loop
async def test_the_first_quote_holds_the_short_answer(engine: AnswerEngine) -> None:
    for item in QUESTIONS:
        answer = await engine.answer(item["question"], AFTER_ALL)
        if answer.kind == "answer":
            assert answer.text in answer.quotes[0].text, (answer.text, answer.quotes[0].text)


@module_loop
async def test_quotes_only_when_the_reader_is_not_sure_enough(engine: AnswerEngine) -> None:
    unsure = AnswerEngine(
        engine.store, engine.search, engine.reader, Thresholds(min_answer_confidence=1.01)
    )
    answer = await unsure.answer("who signed with Zolotov?", AFTER_ALL)
    assert (answer.kind, answer.text, answer.abstained) == ("quotes", "", False)
    assert any("Radan" in q.text for q in answer.quotes)
    assert answer.as_json()["answer"] == "" and answer.as_json()["kind"] == "quotes"


@module_loop
async def test_without_a_reader_strong_evidence_is_shown_as_quotes(engine: AnswerEngine) -> None:
    no_reader = AnswerEngine(engine.store, engine.search, reader=None)
    answer = await no_reader.answer("who signed with Zolotov?", AFTER_ALL)
    assert answer.kind == "quotes" and answer.quotes[0].text
    near_miss = await no_reader.answer(
        "Who did Zolotov sign an agreement with in Ankara?", AFTER_ALL
    )
    assert near_miss.kind == "not_found"


def test_decide_the_three_forms() -> None:
    limits = Thresholds(min_answer_confidence=0.5, max_null_probability=0.9)

    def finding(confidence: float, null: float) -> Finding:
        return Finding("Radan", None, 0, 5, (0, 9), confidence, null)  # type: ignore[arg-type]

    assert decide(True, finding(0.99, 0.0), limits) == "not_found"  # weak evidence
    assert decide(False, finding(0.99, 0.95), limits) == "not_found"  # the reader: not here
    assert decide(False, finding(0.6, 0.1), limits) == "answer"
    assert decide(False, finding(0.3, 0.1), limits) == "quotes"
    assert decide(False, None, limits) == "quotes"


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
async def test_sample_questions_mostly_read_correctly(engine: AnswerEngine) -> None:
    answerable = [q for q in QUESTIONS if q["answer"]]
    right = 0
    for item in answerable:
        finding = (await engine.trace(item["question"], AFTER_ALL)).finding
        if finding and normalize_for_hash(item["answer"]) in normalize_for_hash(finding.text):
            right += 1
    # The reader's best answer, shown or not. It never saw these questions
    # (benchmarks/train_reader.py reads none of them): they check it, they do not teach it.
    assert right >= RIGHT_FLOOR, f"{right} of {len(answerable)}"


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
    result = run_cli("ask", "--json", NOURI, data_dir=copy_data_dir)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"question", "answer", "abstained", "kind", "confidence", "quotes"}
    assert data["answer"] == "FC Yauza Moscow" and data["abstained"] is False
    assert data["kind"] == "answer" and data["confidence"] >= 0.8
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
    assert lines[0]["kind"] in ("answer", "quotes") and lines[0]["quotes"]
    assert "Radan" in lines[0]["answer"] or lines[0]["answer"] == ""
    assert "Radan" not in lines[1]["answer"]
    assert lines[2]["abstained"] is True and lines[2]["answer"] == ""


def test_cli_ask_text(copy_data_dir: Path) -> None:
    result = run_cli("ask", NOURI, data_dir=copy_data_dir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("FC Yauza Moscow\n")
    assert "Arash Nouri" in result.stdout and "(fictional)" in result.stdout
    result = run_cli("ask", "who signed with Zolotov?", data_dir=copy_data_dir)
    assert SEED_QUOTE in result.stdout and "IFP Media Wire" in result.stdout
