"""Fit the answer ranker's weights on RealTime QA and report held-out answer F1.

For every dev question (as of its date) the answer engine retrieves and scores evidence
as usual; every candidate span of the top sentences (``bot.answering.ranker``) gets its
features and a target: its SQuAD token F1 against the correct choice. A linear model is
fitted by a softmax over each question's candidates (cross-entropy to the targets, L2
penalty), so it learns to put the best-matching candidate first.

The answerable questions of ``tests/fixtures/sample_questions.jsonl`` on the shipped sample
corpus (news-agency prose, unlike the quiz questions) are a second training source,
counted ``--sample-weight`` times each: fitted on the quiz alone, the ranker learned that a
phrase next to the asked name ("National Guard chief Viktor Zolotov") is a fine answer to
"who signed with Zolotov?". Their score is printed too; it is not held out.

Evaluation is honest about the fit: each month's questions are answered with weights
fitted on the other months only (leave one month out), and the table shows F1 and exact
match for the shipped weights, the held-out fit, and the oracle (the best candidate
available, the ceiling of any ranker over these candidates). Finally the weights fitted
on all months are printed, ready for ``WEIGHTS`` in ``bot/answering/ranker.py``.

Reuses the data directory that benchmarks/retrieval.py builds (same cache key).

    .venv/bin/python benchmarks/train_answer_ranker.py [--months 01,02,03] [--l2 0.01]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.answers import f1  # noqa: E402

if TYPE_CHECKING:
    from bot.settings import Settings


@dataclass
class Sample:
    """One question: its candidates' features and targets, or a fixed answer."""

    month: str
    abstains: bool
    fixed: str | None  # an answer that does not come from the ranker
    features: np.ndarray  # candidates x features
    texts: list[str]
    targets: np.ndarray  # F1 of each candidate against the gold answer
    gold: str
    weight: float = 1.0  # how much the question counts in the fit


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--months", help="only these months, e.g. 01,02 (default: all)")
    parser.add_argument("--data-dir", type=Path, help="data directory (default: the cache)")
    parser.add_argument("--l2", type=float, default=0.01, help="L2 penalty (default 0.01)")
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps (default 600)")
    parser.add_argument(
        "--sample-weight",
        type=float,
        default=3.0,
        help="weight of each sample-corpus question in the fit (default 3; 0 leaves them out)",
    )
    return parser


async def collect(args: argparse.Namespace, root: Path) -> list[Sample]:
    """Evidence, candidates and targets for every dev question."""
    from bot.settings import Settings

    months = common.parse_months(args.months)
    questions = [
        (q.id[4:6], q.sentence, q.answer, q.as_of) for q in common.load_questions(root, months)
    ]
    data_dir = args.data_dir or common.default_cache_dir("realtimeqa", months)
    settings = Settings(data_dir=data_dir)
    await common.ensure_corpus(settings.db_path, root, months)
    return await samples_for(settings, questions, weight=1.0)


async def collect_sample_corpus(weight: float) -> list[Sample]:
    """The answerable sample questions on the shipped sample corpus (month "samples")."""
    from bot.settings import Settings
    from corpus.ingest import ingest_results
    from corpus.readers.dispatch import read_path
    from corpus.store import Store

    repo = Path(__file__).resolve().parents[1]
    settings = Settings(data_dir=common.default_cache_dir("samples"))
    async with await Store.open(settings.db_path) as store:
        # Idempotent: unchanged files are duplicates, edited ones replace their article.
        await ingest_results(store, read_path(repo / "corpus" / "samples"))
    as_of = date(2023, 9, 1)
    questions = []
    for line in (repo / "tests" / "fixtures" / "sample_questions.jsonl").read_text().splitlines():
        obj = json.loads(line) if line.strip() else {}
        if obj.get("answer"):
            questions.append(("samples", obj["question"], obj["answer"], as_of))
    return await samples_for(settings, questions, weight)


async def samples_for(
    settings: Settings, questions: list[tuple[str, str, str, date]], weight: float
) -> list[Sample]:
    """Run the engine up to the ranker for (month, question, answer, as_of) tuples."""
    from bot.answering.extract import extract
    from bot.answering.question import analyze
    from bot.answering.ranker import FEATURES, candidate_features
    from bot.services import Services

    services = await Services.open(settings)
    samples: list[Sample] = []
    try:
        engine = services.answers()
        for month, sentence, answer, as_of in questions:
            info = analyze(sentence)
            evidence = await engine.evidence(sentence, as_of)
            abstains = not evidence or engine.is_weak(evidence[0], info)
            ranked = candidate_features(info, evidence)
            # An answer chosen before the ranker runs (or when it has nothing) stays fixed.
            fixed = None
            chosen = extract(info, evidence, weights={})
            if chosen is not None and not any(r.text == chosen.text for r in ranked):
                fixed = chosen.text
            if fixed is not None or not ranked:
                ranked = []
            samples.append(
                Sample(
                    month=month,
                    abstains=abstains,
                    fixed=fixed,
                    features=np.array(
                        [[r.features[name] for name in FEATURES] for r in ranked], dtype=float
                    ).reshape(len(ranked), len(FEATURES)),
                    texts=[r.text for r in ranked],
                    targets=np.array([f1(r.text, answer) for r in ranked], dtype=float),
                    gold=answer,
                    weight=weight,
                )
            )
    finally:
        await services.close()
    return samples


def fit(samples: list[Sample], l2: float, steps: int) -> np.ndarray:
    """Weights of a per-question softmax fitted to the candidates' F1 (Adam, full batch)."""
    usable = [s for s in samples if len(s.targets) > 1 and s.targets.max() > 0]
    if not usable:
        return np.zeros(samples[0].features.shape[1] if samples else 0)
    dims = usable[0].features.shape[1]
    stacked = np.vstack([s.features for s in usable])
    mean, std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-6
    xs = [(s.features - mean) / std for s in usable]
    ts = [s.targets / s.targets.sum() for s in usable]
    weights = [s.weight for s in usable]
    total = sum(weights)
    w = np.zeros(dims)
    m, v = np.zeros(dims), np.zeros(dims)
    lr, beta1, beta2 = 0.05, 0.9, 0.999
    for step in range(1, steps + 1):
        grad = 2 * l2 * w
        for x, t, weight in zip(xs, ts, weights, strict=True):
            z = x @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            grad += weight * (x.T @ (p - t)) / total
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        w -= lr * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + 1e-8)
    return w / std  # raw-feature weights: the mean only shifts every score equally


def evaluate(samples: list[Sample], w: np.ndarray | None) -> tuple[float, float, float]:
    """(F1 answering all, F1 with abstention, EM with abstention); None = oracle."""
    f1_all = f1_kept = em_kept = 0.0
    for s in samples:
        if s.fixed is not None:
            score = f1(s.fixed, s.gold)
            exact = common.normalize_answer(s.fixed) == common.normalize_answer(s.gold)
        elif not len(s.targets):
            score, exact = 0.0, False
        else:
            i = int(np.argmax(s.targets if w is None else s.features @ w))
            score = float(s.targets[i])
            exact = common.normalize_answer(s.texts[i]) == common.normalize_answer(s.gold)
        f1_all += score
        if not s.abstains:
            f1_kept += score
            em_kept += exact
    n = max(1, len(samples))
    return f1_all / n, f1_kept / n, em_kept / n


def held_out(samples: list[Sample], l2: float, steps: int) -> list[float]:
    """Leave one month out: each month answered with weights fitted on the others (and
    the sample questions, which are never a test month)."""
    months = sorted({s.month for s in samples} - {"samples"})
    if len(months) < 2:
        return [float("nan")] * 3
    totals = np.zeros(3)
    for month in months:
        train = [s for s in samples if s.month != month]
        test = [s for s in samples if s.month == month]
        totals += np.array(evaluate(test, fit(train, l2, steps))) * len(test)
    tested = sum(1 for s in samples if s.month in months)
    return [float(x) for x in totals / tested]


async def main_async(args: argparse.Namespace, root: Path) -> None:
    from bot.answering.ranker import FEATURES, WEIGHTS

    dev = await collect(args, root)
    extra = await collect_sample_corpus(args.sample_weight) if args.sample_weight > 0 else []
    common.log(
        f"{len(dev)} dev questions, {len(extra)} sample questions, "
        f"{sum(len(s.targets) for s in dev + extra):,} candidates"
    )
    shipped = np.array([WEIGHTS.get(name, 0.0) for name in FEATURES])
    weights = fit(dev + extra, args.l2, args.steps)
    rows = [
        ["shipped WEIGHTS", *evaluate(dev, shipped)],
        ["held-out fit (by month)", *held_out(dev + extra, args.l2, args.steps)],
        ["fit on all (not held out)", *evaluate(dev, weights)],
        ["oracle candidate", *evaluate(dev, None)],
    ]
    if extra:
        rows.append(["sample questions, shipped", *evaluate(extra, shipped)])
        rows.append(["sample questions, new fit", *evaluate(extra, weights)])
    common.print_table(
        ["ranker", "F1 (never abstain)", "F1", "EM"],
        rows,
        title=f"Answer ranker on RealTime QA, {len(dev)} questions",
    )
    print("WEIGHTS fitted on every month and the sample questions:")
    print("WEIGHTS: dict[str, float] = {")
    for name, value in zip(FEATURES, weights, strict=True):
        print(f'    "{name}": {value:.4f},')
    print("}")


def main() -> int:
    """Entry point."""
    return common.run_benchmark("train_answer_ranker.py", build_parser(), main_async)


if __name__ == "__main__":
    sys.exit(main())
