"""Latency of encoding one short query: torch (fp32, bf16) against onnxruntime (fp32).

Encodes 50 realistic news questions one at a time with the packaged all-MiniLM-L6-v2, each
engine after a warm-up pass, and prints p50/p95 latency per engine with the lowest cosine of
its vectors to torch fp32's. The torch rows run on one thread (``torch.set_num_threads(1)``),
as the onnxruntime encoder does, plus torch with two threads; bf16 rows only where the CPU has
AVX512-BF16 or AMX. Tokenization, pooling and normalization are included in every row.
No data is needed; the first run exports the model to ONNX (cached for later runs).

    .venv/bin/python benchmarks/query_encoding.py [--rounds 5] [--cache-dir DIR]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from benchmarks import common

MODEL = "all-MiniLM-L6-v2"
QUERIES = [
    "who signed with Zolotov?",
    "Which country hosted the summit this week?",
    "What did the central bank decide about interest rates?",
    "Who won the election in Brazil?",
    "How many people died in the earthquake in Turkey?",
    "Which company announced layoffs on Monday?",
    "What is the new inflation rate in the eurozone?",
    "Who is the new prime minister of Italy?",
    "Which team won the Champions League final?",
    "What caused the train derailment in Ohio?",
    "When will the new iPhone be released?",
    "Who was arrested for the museum robbery?",
    "What did the Supreme Court rule on abortion?",
    "Which city will host the 2030 World Cup?",
    "How much did Twitter's revenue fall?",
    "Who resigned from the cabinet yesterday?",
    "What are the terms of the ceasefire agreement?",
    "Which airline cancelled flights because of the strike?",
    "Who scored the winning goal?",
    "What did the president say about the debt ceiling?",
    "Which bank collapsed last week?",
    "How many votes did the bill get in the Senate?",
    "Who bought the football club?",
    "What is the price of oil today?",
    "Which drug did the FDA approve?",
    "Where did the wildfire start?",
    "Who won the Oscar for best actress?",
    "What did the report say about climate change?",
    "Which country joined NATO?",
    "Why was the rocket launch postponed?",
    "Who is the new CEO of Disney?",
    "How long is the prison sentence?",
    "What did OpenAI announce?",
    "Which ministers met in Brussels?",
    "Who was killed in the drone strike?",
    "What happened at the border crossing?",
    "How many jobs were added in January?",
    "Which tennis player withdrew from the tournament?",
    "What are the new sanctions against Russia?",
    "Who leaked the classified documents?",
    "Which storm hit Florida?",
    "What did the WHO warn about?",
    "Who signed the trade deal with the EU?",
    "How high did the floodwater rise?",
    "Which startup raised the most money this month?",
    "Who was elected speaker of the House?",
    "What is the name of the new COVID variant?",
    "Which singer cancelled the tour?",
    "Where will the peace talks take place?",
    "What did the company say about the data breach?",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="timed passes over the 50 queries (default 5)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=common.default_cache_dir("query-encoding") / "onnx",
        help="where the exported ONNX model is kept (default: a folder under $TMPDIR)",
    )
    return parser


def cpu_description() -> tuple[str, list[str]]:
    """The CPU's model name and which of avx512_bf16/amx_bf16 it has."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown", []
    name = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
    flags = [flag for flag in ("avx512_bf16", "amx_bf16") if re.search(rf"\b{flag}\b", info)]
    return (name.group(1).strip() if name else "unknown"), flags


def time_pass(encode: Callable[[Sequence[str]], np.ndarray]) -> list[float]:
    """Latencies in ms of ``encode([query])`` for each query."""
    latencies = []
    for query in QUERIES:
        started = time.perf_counter()
        encode([query])
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def main() -> int:
    args = build_parser().parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from embeddings.embedder import resolve_model_path
    from embeddings.onnx_encoder import OnnxQueryEncoder, onnx_runtime_available

    name, flags = cpu_description()
    print(f"CPU: {name} ({torch.get_num_threads()} torch threads by default)")
    print(f"bf16 flags: {', '.join(flags) or 'none (no bf16 rows)'}")
    print(f"{len(QUERIES)} queries x {args.rounds} rounds, one query per encode\n")

    path = resolve_model_path(MODEL)
    engines: list[tuple[str, int, Callable[[Sequence[str]], np.ndarray]]] = []
    for dtype in [torch.float32] + ([torch.bfloat16] if flags else []):
        model = SentenceTransformer(path, device="cpu", model_kwargs={"torch_dtype": dtype})

        def encode(texts: Sequence[str], model: SentenceTransformer = model) -> np.ndarray:
            return model.encode(
                list(texts),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )

        label = "torch fp32" if dtype == torch.float32 else "torch bf16"
        engines += [(label, 1, encode), (label, 2, encode)]
    if onnx_runtime_available():
        started = time.perf_counter()
        onnx = OnnxQueryEncoder(MODEL, args.cache_dir)
        common.log(
            f"onnxruntime model ready in {time.perf_counter() - started:.1f} s: {onnx.onnx_path} "
            f"({onnx.onnx_path.stat().st_size / 1e6:.0f} MB)"
        )
        engines.append(("onnxruntime fp32", 1, onnx.encode))
    else:
        common.log("onnxruntime is not installed: no onnxruntime row")

    def use(label: str, threads: int) -> None:
        if label.startswith("torch"):
            torch.set_num_threads(threads)

    # Warm-up pass, which also gives each engine's vectors; the first is torch fp32, 1 thread.
    vectors = []
    for label, threads, run in engines:
        use(label, threads)
        vectors.append(np.vstack([np.asarray(run([q]), dtype=np.float32) for q in QUERIES]))
    # Rounds take turns across the engines, so a burst of load elsewhere on the machine
    # spreads over all rows instead of skewing one.
    latencies: list[list[float]] = [[] for _ in engines]
    for done in range(args.rounds):
        common.log(f"round {done + 1} of {args.rounds} ...")
        for i, (label, threads, run) in enumerate(engines):
            use(label, threads)
            latencies[i] += time_pass(run)
    rows = []
    for (label, threads, _), times, vecs in zip(engines, latencies, vectors, strict=True):
        min_cosine = float((vecs * vectors[0]).sum(axis=1).min())
        p50, p95 = common.percentile(times, 50), common.percentile(times, 95)
        rows.append([label, threads, p50, p95, f"{min_cosine:.5f}"])
    common.print_table(
        ["engine", "threads", "p50 ms", "p95 ms", "min cos to fp32"],
        rows,
        title="Single-query encoding latency (all-MiniLM-L6-v2)",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
