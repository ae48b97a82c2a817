"""Answers while ``/reindex`` rebuilds the index: 1,000 questions, none may fail, p95 < 1 s.

What a busy bot sees: questions arrive a few at a time (``--concurrency``, 4 by default)
while an admin's ``/reindex`` runs ``SearchService.update(rebuild=True)``. The questions are
answered by the real engine (the packaged model, the reader) on the sample corpus, or with
``--dev`` on the RealTime QA development corpus (``../shared/data``, the data directory
that ``benchmarks/retrieval.py`` builds), cycling through the sample or dev questions.

The rebuild is started first and restarted as soon as it ends, until every question is
answered, so all of them are asked during a rebuild (on the small sample corpus a rebuild
takes tens of milliseconds, a second or two with ``--reembed``). ``--reembed`` drops the
stored vectors before each rebuild, so it embeds every chunk again (as after a model
change): the heaviest rebuild there is; without it a rebuild reuses the stored vectors, as
``/reindex`` does.

``--reader-threads 1`` (and ``--embedder-threads 1``) run the reader's (the embedder's)
torch on one thread instead of torch's default (one per core): on two cores shared with a
rebuild, a two-thread OpenMP team waits for whichever of its threads the other work holds
off its core, and a read took 3-4x as long. ``--gc-freeze`` moves everything alive after
start-up (models, libraries) out of the garbage collector's reach (``gc.freeze``): without
it, a full collection, which the rebuilds' allocations trigger, scans all of it while
holding the interpreter lock, and every thread, the event loop's too, stops for 250-350 ms.

Printed: the machine (with its load average: on a shared machine other processes' work
shows in every figure), the same questions with the index idle for comparison, then per
phase the questions answered, how many finished while a rebuild was running (and wholly
inside one), failures (exceptions), answers unlike the idle ones, latency p50/p95/max and
the event loop's longest stall (a probe task that wakes every 5 ms); where an answer's
time goes (the search, and the reader: waiting for its thread, then reading) and the
process' CPU milliseconds per answer (the rebuilds' included); and the rebuilds: how many,
their duration, chunks embedded.

    .venv/bin/python benchmarks/answers_during_reindex.py [--questions 1000] [--concurrency 4]
        [--reembed] [--idle 100] [--reader-threads N] [--embedder-threads N] [--gc-freeze]
        [--dev [--months 01] [--data-dir DIR]]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

SAMPLE_QUESTIONS = common.REPO_ROOT / "tests" / "fixtures" / "sample_questions.jsonl"
SAMPLE_AS_OF = date(2023, 9, 1)  # after every sample article
PROBE_SECONDS = 0.005
FLOOR_P95 = 1.0  # seconds


@dataclass(frozen=True)
class Ask:
    """One question as of a day."""

    text: str
    as_of: date


@dataclass
class Result:
    """One answered (or failed) question."""

    ask: Ask
    started: float
    ended: float
    error: str = ""
    kind: str = ""
    quotes: tuple[tuple[int, int, int], ...] = ()  # (article, start, end) of every quote

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Rebuilds:
    """The rebuilds run so far: (start, end, chunks embedded) each, and whether one runs."""

    spans: list[tuple[float, float, int]] = field(default_factory=list)
    running_since: float | None = None
    first_started: asyncio.Event = field(default_factory=asyncio.Event)

    def running_at(self, moment: float) -> bool:
        if self.running_since is not None and moment >= self.running_since:
            return True
        return any(s <= moment <= e for s, e, _ in self.spans)

    def inside_one(self, start: float, end: float) -> bool:
        if self.running_since is not None and start >= self.running_since:
            return True
        return any(s <= start and end <= e for s, e, _ in self.spans)


class Stages:
    """Seconds spent in the engine's search and reader calls (wrapped on the instances),
    and the process' CPU seconds, per phase."""

    def __init__(self, engine: Any) -> None:
        self.seconds: dict[str, list[float]] = {"search": [], "reader": []}
        self._cpu = 0.0
        self._wrap(engine.search, "search", "search")
        if engine.reader is not None:
            self._wrap(engine.reader, "aread", "reader")

    def _wrap(self, owner: Any, method: str, name: str) -> None:
        inner = getattr(owner, method)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await inner(*args, **kwargs)
            finally:
                self.seconds[name].append(time.perf_counter() - started)

        setattr(owner, method, timed)  # on this instance only: the benchmark's own engine

    @staticmethod
    def cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def start(self) -> None:
        for values in self.seconds.values():
            values.clear()
        self._cpu = self.cpu_seconds()

    def row(self, name: str, answers: int) -> list[Any]:
        """search and reader p50/p95 (ms), CPU ms per answer."""
        ms = {k: [1000 * v for v in values] for k, values in self.seconds.items()}
        cpu = 1000 * (self.cpu_seconds() - self._cpu) / max(answers, 1)
        return [
            name,
            common.percentile(ms["search"], 50),
            common.percentile(ms["search"], 95),
            common.percentile(ms["reader"], 50),
            common.percentile(ms["reader"], 95),
            cpu,
        ]


class LoopProbe:
    """The event loop's longest stall: a task that asks to wake every 5 ms and records how
    late it wakes (a CPU step on the loop shows up here, whatever its cause)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            due = time.perf_counter() + PROBE_SECONDS
            await asyncio.sleep(PROBE_SECONDS)
            self.worst = max(self.worst, time.perf_counter() - due)

    def start(self) -> None:
        self.worst = 0.0
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> float:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        return self.worst


def sample_questions() -> list[Ask]:
    """The sample questions (answerable and near misses), as of after every article."""
    items = [json.loads(x) for x in SAMPLE_QUESTIONS.read_text().splitlines() if x.strip()]
    return [Ask(item["question"], SAMPLE_AS_OF) for item in items]


async def ask_all(engine: Any, asks: Sequence[Ask], concurrency: int) -> list[Result]:
    """Answer every question, ``concurrency`` at a time, recording each one's latency."""
    results: list[Result] = []
    queue = list(reversed(asks))

    async def worker() -> None:
        while queue:
            ask = queue.pop()
            started = time.perf_counter()
            try:
                answer = await engine.answer(ask.text, ask.as_of)
            except Exception as exc:  # every failure is counted, none stops the run
                results.append(Result(ask, started, time.perf_counter(), repr(exc)[:200]))
                continue
            quotes = tuple((q.article_id, q.start, q.end) for q in answer.quotes)
            results.append(Result(ask, started, time.perf_counter(), "", answer.kind, quotes))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


async def keep_rebuilding(
    services: Any, rebuilds: Rebuilds, done: asyncio.Event, reembed: bool
) -> None:
    """Full rebuilds back to back until ``done`` (each starts as the last one ends)."""
    while not done.is_set():
        if reembed:
            async with services.store.transaction() as db:
                await db.execute("DELETE FROM chunk_vectors")
        rebuilds.running_since = time.perf_counter()
        rebuilds.first_started.set()
        report = await services.search.update(rebuild=True)
        rebuilds.spans.append((rebuilds.running_since, time.perf_counter(), report.embedded))
        rebuilds.running_since = None
        if len(rebuilds.spans) % 100 == 1:  # the first, then every 100th: they are many
            common.log(
                f"rebuild {len(rebuilds.spans)}: {report.chunks:,} chunks, "
                f"{report.embedded:,} embedded, {report.seconds:.2f} s"
            )


def phase_row(
    name: str,
    results: list[Result],
    idle: dict[Ask, Result],
    stall: float,
    rebuilds: Rebuilds | None,
) -> list[Any]:
    """One table row: counts, failures, latency percentiles (ms), the loop's worst stall."""
    ms = [1000 * r.seconds for r in results]
    failures = sum(bool(r.error) for r in results)
    changed = sum(
        1
        for r in results
        if not r.error
        and r.ask in idle
        and (r.kind, r.quotes) != (idle[r.ask].kind, idle[r.ask].quotes)
    )
    during = inside = 0
    if rebuilds is not None:
        during = sum(rebuilds.running_at(r.ended) for r in results)
        inside = sum(rebuilds.inside_one(r.started, r.ended) for r in results)
    return [
        name,
        len(results),
        during,
        inside,
        failures,
        changed,
        common.percentile(ms, 50),
        common.percentile(ms, 95),
        max(ms) if ms else float("nan"),
        1000 * stall,
    ]


async def open_services(args: argparse.Namespace) -> tuple[Any, list[Ask], Any]:
    """(services, questions, closer) for the sample corpus or, with ``--dev``, the dev one."""
    from bot.services import Services
    from bot.settings import Settings
    from embeddings.embedder import load_embedder

    if not args.dev:
        # The model's precision choices are kept between runs, as a deployment keeps them.
        cache = common.default_cache_dir("answers-during-reindex") / "cache"
        settings = Settings(data_dir=cache.parent)
        embedder = await asyncio.to_thread(
            load_embedder, settings.model, settings.embed_precision, cache
        )
        context = common.sample_corpus_services(embedder, "newsbot-bench-reindex-")
        services = await context.__aenter__()
        return services, sample_questions(), context

    root = common.require_data(prog="answers_during_reindex.py")
    months = common.parse_months(args.months)
    data_dir = args.data_dir or common.default_cache_dir("realtimeqa", months)
    settings = Settings(data_dir=data_dir)
    await common.ensure_corpus(settings.db_path, root, months)
    common.log(f"data directory: {data_dir} (the index is built on first use)")
    services = await Services.open(settings)
    asks = [Ask(q.sentence, q.as_of) for q in common.load_questions(root, months)]
    return services, asks, None


def load_average() -> str:
    """The machine's 1, 5 and 15 minute load averages (its cores: ``os.cpu_count()``)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "-"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def torch_threads(worker_owner: Any, threads: int | None) -> str:
    """Set the torch thread count of a model's own worker thread (reader or embedder; its
    ``_on_worker`` runs a call there: the count is per thread); its count, as text."""
    import torch

    if worker_owner is None or not hasattr(worker_owner, "_on_worker"):
        return "-"
    if threads:
        worker_owner._on_worker(torch.set_num_threads, threads)
    return str(worker_owner._on_worker(torch.get_num_threads))


async def run(args: argparse.Namespace) -> None:
    services, pool, context = await open_services(args)
    try:
        engine = await services.answers()
        reader_threads = torch_threads(engine.reader, args.reader_threads)
        embedder_threads = torch_threads(services.embedder, args.embedder_threads)
        common.print_machine_header(getattr(services.embedder, "precision", None))
        print(
            f"corpus: {'dev (RealTime QA)' if args.dev else 'sample'}, "
            f"{services.search.count:,} chunks; queries by "
            f"{getattr(services.embedder, 'query_engine', '-')}; reader "
            f"{getattr(engine.reader, 'precision', 'off')}; concurrency {args.concurrency}; "
            f"rebuilds {'re-embed every chunk' if args.reembed else 'reuse stored vectors'}; "
            f"torch threads of the reader {reader_threads}, of the embedder {embedder_threads}"
        )
        if args.gc_freeze:
            gc.collect()
            gc.freeze()
        print(f"gc.freeze after start-up: {'yes' if args.gc_freeze else 'no'}")
        print(f"load average at the start: {load_average()}")
        print()
        asks = [pool[i % len(pool)] for i in range(args.questions)]
        await ask_all(engine, pool[: args.concurrency], args.concurrency)  # warm-up
        probe, stages = LoopProbe(), Stages(engine)

        probe.start()
        stages.start()
        idle_results = await ask_all(engine, asks[: args.idle], args.concurrency)
        idle_stall = await probe.stop()
        stage_rows = [stages.row("index idle", len(idle_results))]
        idle = {r.ask: r for r in idle_results if not r.error}

        rebuilds, done = Rebuilds(), asyncio.Event()
        probe.start()
        stages.start()
        rebuilding = asyncio.create_task(keep_rebuilding(services, rebuilds, done, args.reembed))
        await rebuilds.first_started.wait()  # questions only once a rebuild runs
        results = await ask_all(engine, asks, args.concurrency)
        answered_at = time.perf_counter()
        stage_rows.append(stages.row("during /reindex", len(results)))
        done.set()
        await rebuilding
        stall = await probe.stop()
    finally:
        if context is not None:
            await context.__aexit__(None, None, None)
        else:
            await services.close()

    common.print_table(
        [
            "phase",
            "questions",
            "ended in rebuild",
            "inside one",
            "failures",
            "unlike idle",
            "p50 ms",
            "p95 ms",
            "max ms",
            "loop stall ms",
        ],
        [
            phase_row("index idle", idle_results, idle, idle_stall, None),
            phase_row("during /reindex", results, idle, stall, rebuilds),
        ],
        title="Answers with the index idle, then during back-to-back full rebuilds",
    )
    common.print_table(
        ["phase", "search p50", "search p95", "reader p50", "reader p95", "CPU ms/answer"],
        stage_rows,
        title="Where the time goes (ms; the reader's include waiting for its one thread)",
    )
    seconds = [e - s for s, e, _ in rebuilds.spans]
    common.print_table(
        [
            "rebuilds",
            "first s",
            "mean s",
            "max s",
            "chunks embedded each",
            "questions answered in s",
        ],
        [
            [
                len(seconds),
                seconds[0] if seconds else None,
                sum(seconds) / len(seconds) if seconds else None,
                max(seconds) if seconds else None,
                rebuilds.spans[0][2] if rebuilds.spans else None,
                answered_at - min(r.started for r in results),
            ]
        ],
        title="The rebuilds (each started as the previous one ended)",
    )
    for r in [r for r in results if r.error][:5]:
        print(f"failed: {r.ask.text!r}: {r.error}")
    p95 = common.percentile([r.seconds for r in results], 95)
    failures = sum(bool(r.error) for r in results)
    verdict = "met" if failures == 0 and p95 < FLOOR_P95 else "NOT met"
    print(f"floor (0 failures, p95 < {FLOOR_P95:g} s during the rebuild): {verdict}")
    print(f"load average at the end: {load_average()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=1000, help="asked during rebuilds")
    parser.add_argument("--concurrency", type=int, default=4, help="questions at a time")
    parser.add_argument("--idle", type=int, default=100, help="asked first, index idle")
    parser.add_argument("--reembed", action="store_true", help="rebuilds embed every chunk")
    parser.add_argument("--reader-threads", type=int, default=None, help="reader's torch")
    parser.add_argument("--embedder-threads", type=int, default=None, help="embedder's torch")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after start-up")
    parser.add_argument("--dev", action="store_true", help="the RealTime QA dev corpus")
    parser.add_argument("--months", default=None, help="dev months, e.g. 01,02")
    parser.add_argument("--data-dir", type=Path, default=None, help="dev data directory")
    args = parser.parse_args()
    if args.dev:
        common.require_data(prog="answers_during_reindex.py")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
