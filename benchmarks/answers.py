"""Answer quality and speed on RealTime QA 2023 Q1, each question as of its date.

Free text: exact match and token F1 of the short answer against the text of the correct
choice (SQuAD normalization, as RealTime QA scores; an abstention scores 0), the share of
answers whose quotes contain the answer, the abstention rate, and latency p50/p95 in
process. Every displayed quote is checked against the stored article by its offsets.
Multiple choice: the choice best supported by the retrieved evidence sentences.
Printed beside the published baselines (GPT-3 + Google search).

Reuses the data directory that benchmarks/retrieval.py builds (same cache key).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402


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


def load_choices(root: Path, months: tuple[str, ...]) -> dict[str, tuple[list[str], int]]:
    """Question id -> (choices, index of the correct one)."""
    out = {}
    for path in common.data_files(root, "_qa.jsonl", months):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                out[str(obj["question_id"])] = (obj["choices"], int(obj["answer"][0]))
    return out


def pick_choice(choices: list[str], evidence: list[Any]) -> int:
    """The choice named in the best-scored evidence sentences (ties: the first)."""
    scores = []
    for choice in choices:
        norm = common.normalize_answer(choice)
        best = 0.0
        for ev in evidence[:30]:
            if norm and common.contains_answer(common.normalize_answer(ev.text), norm):
                best = max(best, ev.score)
            elif norm and common.contains_answer(common.normalize_answer(ev.article.text), norm):
                best = max(best, 0.3 * ev.score)
        scores.append(best)
    return max(range(len(choices)), key=lambda i: scores[i])


async def run(args: argparse.Namespace, root: Path) -> None:
    from bot.services import Services
    from bot.settings import Settings

    months = common.parse_months(args.months)
    questions = common.load_questions(root, months)[: args.limit or None]
    choices = load_choices(root, months)
    data_dir = args.data_dir or common.default_cache_dir("realtimeqa", months)
    print(f"data directory: {data_dir}")
    settings = Settings(data_dir=data_dir)
    await common.ensure_corpus(settings.db_path, root, months)
    services = await Services.open(settings)
    engine = services.answers()
    store = services.store
    em = quoted = abstained = mc_right = quotes_checked = quotes_bad = 0
    f1_sum = 0.0
    latencies = []
    try:
        for q in questions:
            started = time.perf_counter()
            answer = await engine.answer(q.sentence, q.as_of)
            latencies.append((time.perf_counter() - started) * 1000)
            gold = common.normalize_answer(q.answer)
            if answer.abstained:
                abstained += 1
            else:
                em += common.normalize_answer(answer.text) == gold
                f1_sum += f1(answer.text, q.answer)
                quoted += any(
                    common.contains_answer(common.normalize_answer(x.text), gold)
                    for x in answer.quotes
                )
            for x in answer.quotes + answer.more_quotes:
                article = await store.get_article(x.article_id)
                quotes_checked += 1
                quotes_bad += article is None or article.text[x.start : x.end] != x.text
            options, right = choices[q.id]
            evidence = await engine.evidence(q.sentence, q.as_of)
            mc_right += pick_choice(options, evidence) == right
    finally:
        await services.close()
    n = len(questions)
    common.print_table(
        ["system", "questions", "EM", "F1", "answer in quotes", "abstained", "MC accuracy"],
        [
            [
                "newsbot extractive (no LM)",
                n,
                em / n,
                f1_sum / n,
                quoted / n,
                abstained / n,
                mc_right / n,
            ],
            ["GPT-3 + Google search (published)", 370, 0.316, 0.401, "", "", ""],
            ["GPT-3 + Google search, Jan. (published)", 120, 0.316, 0.394, "", "", 0.642],
        ],
        title="RealTime QA 2023 Q1, each question as of its date",
    )
    common.print_table(
        ["latency p50 ms", "p95 ms", "quotes checked", "not verbatim"],
        [
            [
                common.percentile(latencies, 50),
                common.percentile(latencies, 95),
                quotes_checked,
                quotes_bad,
            ]
        ],
    )


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--months", help="e.g. 01,02 (default: all)")
    parser.add_argument("--data-dir", type=Path, help="reuse this data directory")
    args = parser.parse_args()
    root = common.require_data(prog="answers.py")
    asyncio.run(run(args, root))
    return 0


if __name__ == "__main__":
    sys.exit(main())
