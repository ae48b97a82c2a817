"""Cold start of ``newsbot ask``: process start to printed answer, on the shipped samples.

Builds a temporary data directory once (``newsbot ingest corpus/samples``, which also
indexes), then:

1. runs ``newsbot ask "who signed with Zolotov?"`` as a fresh process ``--runs`` times and
   reports the wall time (p50, min, max): interpreter start, imports, model and index
   load, the answer, and exit;
2. in one more fresh process, times where that goes, phase by phase in this order: Python
   start + ``import bot.cli``, ``import torch``, ``import sentence_transformers``
   (and transformers), ``import faiss``, the rest of the CLI's imports (the command modules
   that ``build_parser`` loads), loading the embedder, opening the services (store and
   index), the answer engine (it loads the span reader), the first answer, a second answer
   to another question (warm, not in the total), and closing + interpreter exit. An import
   phase counts only what the phases before it did not load already, so the split depends
   on this order; the total does not.

Needs no ``../shared`` data: the sample corpus ships in ``corpus/samples``. The
temporary directory (``tempfile.mkdtemp()``) is removed at the end. The model's speed
differs about 3x between CPUs with and without AMX / AVX512-BF16: see the machine header.

    .venv/bin/python benchmarks/cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common

SAMPLE_CORPUS = common.REPO_ROOT / "corpus" / "samples"
NEWSBOT = Path(sys.executable).parent / "newsbot"
QUESTION = "who signed with Zolotov?"
WARM_QUESTION = "Which museum did Iran's police chief visit in Moscow after signing the memorandum?"
TIMEOUT = 600.0  # seconds for one subprocess

# The phase probe, run as ``python -c`` in a fresh process: wall-clock marks (time.time(),
# comparable with the parent's) after each phase, as one JSON line on stdout.
PROBE = """
import time
marks = {}
import bot.cli
marks["python start + import bot.cli"] = time.time()
import torch
marks["import torch"] = time.time()
import sentence_transformers, transformers
marks["import sentence_transformers + transformers"] = time.time()
import faiss
marks["import faiss"] = time.time()
bot.cli.build_parser()
marks["rest of the CLI's imports (command modules)"] = time.time()
import asyncio, json, sys
from bot.services import Services
from bot.settings import Settings
from embeddings.embedder import load_embedder
settings = Settings.from_env()
embedder = load_embedder(settings.model, settings.embed_precision, settings.cache_dir)
marks["load the embedder"] = time.time()

async def run():
    services = await Services.open(settings, embedder=embedder)
    marks["open the services (store, index)"] = time.time()
    try:
        engine = await services.answers()
        marks["answer engine (loads the span reader)"] = time.time()
        first = await engine.answer(sys.argv[1])
        marks["first answer"] = time.time()
        await engine.answer(sys.argv[2])
        marks["second answer (warm)"] = time.time()
    finally:
        await services.close()
    return first

first = asyncio.run(run())
print(json.dumps({
    "marks": marks,
    "answer": first.text,
    "precision": getattr(embedder, "precision", None),
}), flush=True)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runs", type=int, default=5, help="cold `newsbot ask` processes to time (default 5)"
    )
    parser.add_argument("--question", default=QUESTION, help=f"the question (default {QUESTION!r})")
    return parser


def newsbot_command() -> list[str]:
    """The ``newsbot`` console script beside this interpreter, else ``python -m bot.cli``."""
    return [str(NEWSBOT)] if NEWSBOT.exists() else [sys.executable, "-m", "bot.cli"]


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` from the repository root; raise with its stderr when it fails."""
    result = subprocess.run(
        cmd,
        env=env,
        cwd=common.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{Path(cmd[0]).name} {cmd[1]} ... failed ({result.returncode}):\n"
            f"{result.stderr[-2000:]}"
        )
    return result


def time_asks(question: str, runs: int, env: dict[str, str]) -> tuple[list[float], str]:
    """Wall seconds of ``runs`` fresh ``newsbot ask`` processes, and the answer's start."""
    seconds: list[float] = []
    answer = ""
    for i in range(1, runs + 1):
        started = time.perf_counter()
        result = run([*newsbot_command(), "ask", question], env)
        seconds.append(time.perf_counter() - started)
        lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
        answer = answer or " / ".join(lines[:2])[:200]
        common.log(f"  ask {i}/{runs}: {1000 * seconds[-1]:,.0f} ms")
    return seconds, answer


def probe_phases(question: str, env: dict[str, str]) -> tuple[list[tuple[str, float]], Any]:
    """(phase, seconds) in order from one fresh probe process, and what it printed."""
    started = time.time()
    result = run([sys.executable, "-c", PROBE, question, WARM_QUESTION], env)
    ended = time.time()
    out = json.loads(result.stdout.strip().splitlines()[-1])
    phases: list[tuple[str, float]] = []
    last = started
    for name, mark in out["marks"].items():
        phases.append((name, mark - last))
        last = mark
    phases.append(("close + interpreter exit", ended - last))
    return phases, out


def report(
    asks: list[float], answer: str, phases: list[tuple[str, float]], probe: Any, ingest_s: float
) -> None:
    """The machine header, the wall-time table and the phase table."""
    common.print_machine_header(probe.get("precision"))
    ms = [1000 * s for s in asks]
    common.print_table(
        ["command", "runs", "p50 ms", "min ms", "max ms"],
        [
            [
                "newsbot ask (process start -> exit)",
                len(ms),
                common.percentile(ms, 50),
                min(ms),
                max(ms),
            ]
        ],
        title="Cold start of `newsbot ask` on the sample corpus (fresh process per run)",
    )
    warm = "second answer (warm)"
    total = sum(s for name, s in phases if name != warm)
    rows: list[list[Any]] = []
    for name, seconds in phases:
        share = "-" if name == warm else f"{100 * seconds / total:.1f}%"
        label = f"{name}, not in total" if name == warm else name
        rows.append([label, 1000 * seconds, share])
    rows.append(["total (process start -> exit, one answer)", 1000 * total, "100.0%"])
    common.print_table(
        ["phase", "ms", "share"],
        rows,
        title="Where the time goes (one more fresh process, phases in this order)",
    )
    print(f"answer: {answer}")
    print(f"setup (not timed above): newsbot ingest + index of the samples {ingest_s:.1f} s")


def main() -> int:
    """Entry point."""
    args = build_parser().parse_args()
    if args.runs < 1:
        print("cold_start.py: --runs must be at least 1", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="newsbot-cold-start-"))
    try:
        env = dict(
            os.environ,
            NEWSBOT_DATA_DIR=str(tmp / "data"),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
        )
        common.log(f"newsbot ingest {SAMPLE_CORPUS} (into {tmp}) ...")
        started = time.perf_counter()
        run([*newsbot_command(), "ingest", str(SAMPLE_CORPUS)], env)
        ingest_s = time.perf_counter() - started
        common.log(f"timing {args.runs} cold asks ...")
        asks, answer = time_asks(args.question, args.runs, env)
        common.log("timing the phases in a fresh process ...")
        phases, probe = probe_phases(args.question, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(asks, answer, phases, probe, ingest_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
