"""Answer quality and speed on RealTime QA 2023 Q1, each question as of its date.

Free text, scored as RealTime QA scores (SQuAD normalization, token F1 against the text of
the correct choice; a quotes-only answer or "not found" scores 0): EM and F1 over all
questions, and the **precision where it answers** (mean F1 over the questions given a short
answer) with the share of shown short answers that are wholly wrong (F1 = 0). Printed beside
the previous engine (the hand-made candidate ranker, same questions) and GPT-3 + Google.

The reader's two thresholds (``engine.Thresholds``: a short answer from a confidence, "not
found" above a no-answer probability) are chosen here: the highest F1 whose shown short
answers have a mean F1 >= 0.5, such that every near miss of
``tests/fixtures/sample_questions.jsonl`` is "not found". The figure reported for
the development set is **held out**: each month is scored with thresholds chosen on the two
other months (leave-one-month-out); the shipped thresholds are chosen on all three. The
reader itself never saw these questions (``benchmarks/train_reader.py``).

Also printed: calibration (confidence bins against the F1 reached), whether the reader's
passage probabilities re-rank the passages read better than the evidence order (Hits@1,
Hits@4, MRR of a passage holding the answer), latency p50/p95 in process beside the
encoder's chunks/s measured in the same run, and every displayed quote checked by offsets.

    .venv/bin/python benchmarks/answers.py [--limit N] [--read 6] [--window 90] [--data-dir DIR]

Reuses the data directory that benchmarks/retrieval.py builds (same cache key).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

SAMPLE_QUESTIONS = common.REPO_ROOT / "tests" / "fixtures" / "sample_questions.jsonl"
PREVIOUS = {  # the candidate ranker engine, measured on the same 370 questions (2026-11)
    "EM": 0.149,
    "F1": 0.206,
    "answered": 0.749,
    "precision": 0.275,
}
CONFIDENCE_GRID = [round(0.05 * i, 2) for i in range(1, 20)]
NULL_GRID = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0]


def f1(prediction: str, truth: str) -> float:
    """SQuAD token F1."""
    pred = common.normalize_answer(prediction).split()
    gold = common.normalize_answer(truth).split()
    common_tokens = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common_tokens.values())
    if not pred or not gold or not same:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


@dataclass
class Record:
    """One question's trace, reduced to what the scoring and the calibration need."""

    month: str
    gold: str
    weak: bool
    found: Any = None  # engine.Finding | None
    finding: str = ""
    confidence: float = 0.0
    latency_ms: float = 0.0
    quote_texts: list[str] = field(default_factory=list)
    passage_gold: list[bool] = field(default_factory=list)  # read passages holding the answer
    passage_probs: list[float] = field(default_factory=list)

    @property
    def finding_f1(self) -> float:
        return f1(self.finding, self.gold) if self.finding else 0.0


def kind_of(record: Record, confidence: float, max_null: float) -> str:
    """The engine's decision (``engine.decide``) for a record under other thresholds."""
    from bot.answering.engine import Thresholds, decide

    return decide(
        record.weak,
        record.found,
        Thresholds(min_answer_confidence=confidence, max_null_probability=max_null),
    )


def score(records: list[Record], confidence: float, max_null: float) -> dict[str, float]:
    """EM, F1, answered share, precision where answered, wrong share, quotes, not found."""
    n = len(records) or 1
    shown = [r for r in records if kind_of(r, confidence, max_null) == "answer"]
    quotes = sum(kind_of(r, confidence, max_null) == "quotes" for r in records)
    f1s = [r.finding_f1 for r in shown]
    em = sum(common.normalize_answer(r.finding) == common.normalize_answer(r.gold) for r in shown)
    return {
        "EM": em / n,
        "F1": sum(f1s) / n,
        "answered": len(shown) / n,
        "precision": sum(f1s) / len(shown) if shown else 0.0,
        "wrong": sum(x == 0 for x in f1s) / len(shown) if shown else 0.0,
        "quotes": quotes / n,
        "not_found": 1 - (len(shown) + quotes) / n,
    }


def choose_thresholds(records: list[Record], near_misses: list[Record]) -> tuple[float, float]:
    """The highest F1 on ``records`` whose shown short answers are right on average (mean F1
    >= 0.5: a wrong answer with convincing quotes is worse than the quotes alone), with
    every near miss "not found"; the highest F1 outright where no threshold reaches that."""
    best: tuple[bool, float, float, float] | None = None
    for max_null in reversed(NULL_GRID):  # on a tie, show the quotes rather than nothing
        if any(kind_of(r, 1.01, max_null) != "not_found" for r in near_misses):
            continue
        for confidence in CONFIDENCE_GRID:
            figures = score(records, confidence, max_null)
            key = (figures["precision"] >= 0.5, figures["F1"], confidence, max_null)
            if best is None or key[:2] > best[:2]:
                best = key
    if best is None:  # no null threshold turns every near miss away: the strictest
        return 1.01, 0.0
    return best[2], best[3]


async def collect(engine: Any, questions: list[Any], months: dict[str, str]) -> list[Record]:
    """Trace every question as of its date."""
    records = []
    for q in questions:
        started = time.perf_counter()
        trace = await engine.trace(q.sentence, q.as_of)
        latency = (time.perf_counter() - started) * 1000
        gold = common.normalize_answer(q.answer)
        record = Record(months.get(q.id, ""), q.answer, trace.weak, latency_ms=latency)
        if trace.finding is not None:
            record.finding = trace.finding.text
            record.confidence = trace.finding.confidence
            record.found = trace.finding
        record.quote_texts = [x.text for x in trace.answer.quotes]
        record.passage_gold = [
            common.contains_answer(common.normalize_answer(p.text), gold) for p in trace.passages
        ]
        if trace.reading is not None:
            record.passage_probs = list(trace.reading.passage_probs)
        records.append(record)
        await check_quotes(engine.store, trace.answer, CHECKED)
    return records


CHECKED = {"quotes": 0, "not verbatim": 0}


async def check_quotes(store: Any, answer: Any, tally: dict[str, int]) -> None:
    """Count displayed quotes whose offsets do not give back their text."""
    for x in answer.quotes + answer.more_quotes:
        article = await store.get_article(x.article_id)
        tally["quotes"] += 1
        tally["not verbatim"] += article is None or article.text[x.start : x.end] != x.text


def ranking_figures(records: list[Record], by_reader: bool) -> list[float]:
    """Hits@1, Hits@4, MRR of the first read passage holding the answer."""
    hits1 = hits4 = rr = 0.0
    for r in records:
        order = list(range(len(r.passage_gold)))
        if by_reader and r.passage_probs:
            order.sort(key=lambda i: -r.passage_probs[i])
        ranks = [rank for rank, i in enumerate(order, start=1) if r.passage_gold[i]]
        if ranks:
            hits1 += ranks[0] == 1
            hits4 += ranks[0] <= 4
            rr += 1 / ranks[0]
    n = len(records) or 1
    return [hits1 / n, hits4 / n, rr / n]


async def sample_records(embedder: Any, read: int, window: int) -> tuple[list[Record], list[dict]]:
    """Traces of the sample questions on the shipped sample corpus (a temporary data dir)."""
    items = [json.loads(x) for x in SAMPLE_QUESTIONS.read_text().splitlines() if x.strip()]
    records = []
    async with common.sample_corpus_services(embedder, "newsbot-bench-samples-") as services:
        engine = await services.answers()
        engine.read_passages = read
        engine.window_words = window
        for item in items:
            trace = await engine.trace(item["question"], date(2023, 9, 1))
            record = Record("sample", item["answer"] or "", trace.weak)
            if trace.finding is not None:
                record.finding = trace.finding.text
                record.confidence = trace.finding.confidence
                record.found = trace.finding
                record.quote_texts = [trace.finding.article.text[slice(*trace.finding.sentence)]]
            records.append(record)
    return records, items


async def encoder_rate(engine: Any) -> float:
    """The embedder's chunks/s on 256 stored chunk texts (the CPU's speed in this run)."""
    from embeddings.indexer import embedding_text

    rows = (await engine.store.chunk_rows_for_index())[:256]
    texts = [embedding_text(r) for r in rows]
    embedder = engine.search.embedder
    await asyncio.to_thread(embedder.embed, texts[:32])  # warm-up
    started = time.perf_counter()
    await asyncio.to_thread(embedder.embed, texts)
    return len(texts) / (time.perf_counter() - started)


def reading_figures(reader: Any, limit: int) -> list[list[Any]]:
    """EM/F1 on ``limit`` held-out reading-qa questions (``train_reader``'s split)."""
    from benchmarks import train_reader

    root = common.SHARED_DATA / "reading-qa"
    if not root.is_dir():
        return []
    held = train_reader.held_out_reading(root)
    figures = train_reader.evaluate_reading(reader.read, held, limit)
    return [[name, v["questions"], v["EM"], v["F1"]] for name, v in figures.items()]


def _row(name: str, n: int, figures: dict[str, float]) -> list[Any]:
    keys = ["EM", "F1", "answered", "precision", "wrong", "quotes", "not_found"]
    return [name, n, *(figures.get(k, "") for k in keys)]


async def run(args: argparse.Namespace, root: Path) -> None:
    from bot.answering import engine as engine_module
    from bot.services import Services
    from bot.settings import Settings

    months = common.parse_months(args.months)
    questions = common.load_questions(root, months)[: args.limit or None]
    month_of = {q.id: q.as_of.strftime("%m") for q in questions}
    data_dir = args.data_dir or common.default_cache_dir("realtimeqa", months)
    settings = Settings(data_dir=data_dir)
    await common.ensure_corpus(settings.db_path, root, months)
    services = await Services.open(settings)
    try:
        engine = await services.answers()
        engine.read_passages = args.read
        engine.window_words = args.window
        reader = engine.reader
        common.print_machine_header(getattr(services.embedder, "precision", None))
        print(f"data directory: {data_dir}; reader precision: {getattr(reader, 'precision', '-')}")
        rate = await encoder_rate(engine)
        records = await collect(engine, questions, month_of)
    finally:
        await services.close()
    reading_rows = reading_figures(reader, args.reading) if reader and args.reading else []
    samples, items = await sample_records(services.embedder, args.read, args.window)
    near = [r for r, item in zip(samples, items, strict=True) if not item["answer"]]
    answerable = [(r, item) for r, item in zip(samples, items, strict=True) if item["answer"]]

    shipped = (
        engine_module.MIN_ANSWER_CONFIDENCE,
        engine_module.MAX_NULL_PROBABILITY,
    )
    fitted = choose_thresholds(records, near)
    held_out: list[Record] = []
    held_rows = []
    for month in sorted({r.month for r in records}):
        train = [r for r in records if r.month != month]
        test = [r for r in records if r.month == month]
        chosen = choose_thresholds(train or test, near)
        held_rows.append((month, chosen, score(test, *chosen)))
        held_out += test
    held_f1 = sum(fig["F1"] * sum(r.month == m for r in records) for m, _, fig in held_rows)
    held_answered = [
        (r, chosen)
        for m, chosen, _ in held_rows
        for r in records
        if r.month == m and kind_of(r, *chosen) == "answer"
    ]
    n = len(records)
    held = {
        "F1": held_f1 / n,
        "answered": len(held_answered) / n,
        "precision": (
            sum(r.finding_f1 for r, _ in held_answered) / len(held_answered)
            if held_answered
            else 0.0
        ),
        "wrong": (
            sum(r.finding_f1 == 0 for r, _ in held_answered) / len(held_answered)
            if held_answered
            else 0.0
        ),
    }
    common.print_table(
        [
            "system",
            "questions",
            "EM",
            "F1",
            "answered",
            "precision",
            "F1=0 shown",
            "quotes only",
            "not found",
        ],
        [
            [
                "previous engine (candidate ranker)",
                370,
                PREVIOUS["EM"],
                PREVIOUS["F1"],
                PREVIOUS["answered"],
                PREVIOUS["precision"],
                "",
                "",
                "",
            ],
            _row(f"reader, shipped thresholds {shipped}", n, score(records, *shipped)),
            _row("reader, held-out thresholds (by month)", n, held),
            _row(f"reader, thresholds fitted on all {fitted}", n, score(records, *fitted)),
            _row("reader, always answering", n, score(records, 0.0, 1.01)),
            ["GPT-3 + Google search (published)", 370, 0.316, 0.401, 1.0, 0.401, "", "", ""],
        ],
        title="RealTime QA 2023 Q1, each question as of its date (floors: F1 >= 0.30, "
        "precision >= 0.50)",
    )
    common.print_table(
        ["held-out month", "thresholds (confidence, null)", "F1", "answered", "precision"],
        [[m, str(c), fig["F1"], fig["answered"], fig["precision"]] for m, c, fig in held_rows],
    )
    bins = [(0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.01)]
    read = [r for r in records if r.finding]
    common.print_table(
        ["reader confidence", "questions", "mean F1 of its answer", "exact"],
        [
            [
                f"{lo:.1f}-{min(hi, 1.0):.1f}",
                len(group := [r for r in read if lo <= r.confidence < hi]),
                sum(r.finding_f1 for r in group) / len(group) if group else "",
                sum(r.finding_f1 == 1 for r in group) / len(group) if group else "",
            ]
            for lo, hi in bins
        ],
        title="Calibration: is the reader's confidence the chance its answer is right?",
    )
    with_reading = [r for r in records if r.passage_gold]
    common.print_table(
        [
            "passages read, ordered by",
            "questions",
            "Hits@1",
            "Hits@4",
            "MRR",
            "answer in any read passage",
        ],
        [
            [
                "evidence score",
                len(with_reading),
                *ranking_figures(with_reading, False),
                sum(any(r.passage_gold) for r in with_reading) / max(1, len(with_reading)),
            ],
            [
                "reader (P answer starts in passage)",
                len(with_reading),
                *ranking_figures(with_reading, True),
                "",
            ],
        ],
        title=f"Re-ranking the {args.read} passages read (questions whose evidence was read)",
    )
    right = sum(
        bool(r.finding)
        and kind_of(r, *shipped) == "answer"
        and common.normalize_answer(item["answer"]) in common.normalize_answer(r.finding)
        and (not item.get("quote") or item["quote"] in r.quote_texts)
        for r, item in answerable
    )
    common.print_table(
        ["sample questions", "count", "right with its quote", "near misses not found"],
        [
            ["answerable", len(answerable), right, ""],
            ["near misses", len(near), "", sum(kind_of(r, *shipped) == "not_found" for r in near)],
        ],
        title="Sample corpus (shipped thresholds)",
    )
    if reading_rows:
        common.print_table(
            ["held-out reading-qa (unseen articles)", "questions", "EM", "F1"],
            reading_rows,
            title="Reading (floor: F1 >= 0.70)",
        )
    latencies = [r.latency_ms for r in records]
    common.print_table(
        ["encoder chunks/s", "answer p50 ms", "p95 ms", "quotes checked", "not verbatim"],
        [
            [
                rate,
                common.percentile(latencies, 50),
                common.percentile(latencies, 95),
                CHECKED["quotes"],
                CHECKED["not verbatim"],
            ]
        ],
        title="Speed (in process, same run; floors: p50 <= 300 ms, p95 <= 600 ms)",
    )


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--months", help="e.g. 01,02 (default: all)")
    parser.add_argument("--read", type=int, default=6, help="passages the reader reads")
    parser.add_argument("--window", type=int, default=90, help="words per passage read")
    parser.add_argument("--data-dir", type=Path, help="reuse this data directory")
    parser.add_argument(
        "--reading", type=int, default=1000, help="held-out reading questions (0: skip)"
    )
    return common.run_benchmark("answers.py", parser, run)


if __name__ == "__main__":
    sys.exit(main())
