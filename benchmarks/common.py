"""Helpers shared by the benchmarks: the data location, the RealTime QA corpus and questions,
answer normalization, tables, percentiles, memory figures and the machine header.

The data lives outside the repository, in ``../shared/data`` relative to the repository root
(the parent of ``benchmarks/``). A clone without it makes every benchmark exit with status 0
and a one-line message instead of failing.

Importing this module loads no torch, FAISS or model (only ``machine_header`` imports torch,
for its thread count): the heavy imports happen in the benchmarks, after the data check, so
``--help`` and the "no data" exit stay fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import resource
import string
import sys
import tempfile
import unicodedata
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
REALTIMEQA = "realtimeqa-2023q1"

# Quiet, offline model loading for every benchmark (set before torch/transformers load).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# -- locating the data ----------------------------------------------------------------------


def require_data(name: str = REALTIMEQA, prog: str | None = None) -> Path:
    """``../shared/data/<name>``, or exit 0 with a one-line message when it is missing."""
    path = SHARED_DATA / name
    if not path.is_dir():
        prog = prog or Path(sys.argv[0]).name
        print(f"{prog}: skipped: benchmark data not found at {path} (needs ../shared/data)")
        sys.exit(0)
    return path


def parse_months(value: str | None) -> tuple[str, ...]:
    """``"01,2,03"`` -> ``("01", "02", "03")``; empty or None means every month."""
    if not value:
        return ()
    months = []
    for part in value.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 12:
            raise ValueError(f"not a month: {part!r} (use numbers like 01,02,03)")
        months.append(f"{int(part):02d}")
    return tuple(sorted(set(months)))


def data_files(root: Path, suffix: str, months: Sequence[str] = ()) -> list[Path]:
    """``YYYYMMDD<suffix>`` files of ``root``, sorted, restricted to ``months`` when given."""
    files = sorted(root.glob(f"*{suffix}"))
    if months:
        files = [f for f in files if f.name[4:6] in months]
    return files


# -- the corpus and the questions -----------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """The RealTime QA news corpus as drafts, with what had to be left out."""

    drafts: list[Any]  # list[ArticleDraft]
    failures: list[Any]  # list[ReadFailure]
    search_results: int  # articles listed in the files, before deduplication
    unique_urls: int


def load_corpus(root: Path, months: Sequence[str] = ()) -> Corpus:
    """The union of all ``search_result`` articles of ``*_gcs.jsonl``, deduplicated by URL,
    as drafts made by :func:`corpus.readers.jsonfmt.object_to_draft`."""
    from corpus.models import ArticleDraft
    from corpus.readers.jsonfmt import object_to_draft

    seen: set[str] = set()
    drafts: list[ArticleDraft] = []
    failures: list[Any] = []
    listed = 0
    for path in data_files(root, "_gcs.jsonl", months):
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                record = json.loads(line)
                for i, obj in enumerate(record.get("search_result") or [], start=1):
                    listed += 1
                    url = str(obj.get("url") or "").strip()
                    if url:
                        if url in seen:
                            continue
                        seen.add(url)
                    result = object_to_draft(obj, f"{path.name}:{number}:search_result[{i}]")
                    if isinstance(result, ArticleDraft):
                        drafts.append(result)
                    else:
                        failures.append(result)
    return Corpus(drafts, failures, listed, len(seen))


@dataclass(frozen=True)
class Question:
    """One quiz question with the text of its correct choice and the day it was asked."""

    id: str
    sentence: str
    answer: str
    as_of: date
    source: str


def own_result_urls(root: Path, months: Sequence[str] = ()) -> dict[str, set[str]]:
    """Question id -> the URLs of its own ``search_result`` list (what the search engine
    found for that question when RealTime QA was built)."""
    out: dict[str, set[str]] = {}
    for path in data_files(root, "_gcs.jsonl", months):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    record = json.loads(line)
                    out[str(record["question_id"])] = {
                        str(obj.get("url") or "").strip()
                        for obj in record.get("search_result") or []
                    } - {""}
    return out


SKIP_ANSWERS = frozenset({"true", "false", "yes", "no"})


def scorable(answer: str) -> bool:
    """A free-text answer worth scoring: 3+ characters and not true/false/yes/no."""
    text = answer.strip()
    return len(text) >= 3 and text.lower().strip(string.punctuation + " ") not in SKIP_ANSWERS


def load_questions(
    root: Path, months: Sequence[str] = (), only_scorable: bool = True
) -> list[Question]:
    """Questions of ``*_qa.jsonl``: the answer is ``choices[int(answer[0])]``, the day to
    search as of is ``question_date``; unscorable answers are left out unless asked."""
    questions: list[Question] = []
    for path in data_files(root, "_qa.jsonl", months):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                obj = json.loads(line)
                answer = str(obj["choices"][int(obj["answer"][0])])
                if only_scorable and not scorable(answer):
                    continue
                questions.append(
                    Question(
                        id=str(obj["question_id"]),
                        sentence=str(obj["question_sentence"]).strip(),
                        answer=answer,
                        as_of=datetime.strptime(obj["question_date"], "%Y/%m/%d").date(),
                        source=str(obj.get("question_source", "")),
                    )
                )
    return questions


async def ensure_corpus(db_path: Path, root: Path, months: Sequence[str] = ()) -> None:
    """Ingest the corpus into the store at ``db_path`` unless it already holds articles."""
    import time

    from corpus.ingest import ingest_results
    from corpus.store import Store

    store = await Store.open(db_path)
    try:
        stats = await store.stats()
        if stats.articles:
            log(f"reusing the corpus in {db_path} ({stats.articles:,} articles)")
            return
        corpus = load_corpus(root, months)
        log(f"ingesting {len(corpus.drafts):,} articles into {db_path} ...")
        started = time.perf_counter()
        report = await ingest_results(store, corpus.drafts)
        log(
            f"ingested {len(report.added):,} articles ({len(report.duplicates)} duplicates, "
            f"{len(report.failed)} failed) in {time.perf_counter() - started:.1f} s"
        )
    finally:
        await store.close()


# -- answer matching -----------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def _is_punct(ch: str) -> bool:
    return ch in _PUNCT or unicodedata.category(ch).startswith("P")


def normalize_answer(text: str) -> str:
    """SQuAD normalization: lower case, no punctuation, no a/an/the, single spaces.

    Punctuation is ASCII punctuation plus every Unicode punctuation character, so curly
    quotes in article texts do not keep "Russia’s" from matching "Russia's".
    """
    text = "".join(ch for ch in text.lower() if not _is_punct(ch))
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def contains_answer(normalized_text: str, normalized_answer: str) -> bool:
    """Whether the normalized answer occurs in the normalized text as whole words."""
    if not normalized_answer:
        return False
    return f" {normalized_answer} " in f" {normalized_text} "


# -- output and numbers ---------------------------------------------------------------------


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None
) -> None:
    """A plain aligned table: text left-aligned, numbers right-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [
        all(_is_number(row[i]) for row in cells if i < len(row) and row[i] != "")
        for i in range(len(headers))
    ]
    widths = [
        max([len(h)] + [len(row[i]) for row in cells if i < len(row)])
        for i, h in enumerate(headers)
    ]

    def line(values: Sequence[str]) -> str:
        out = []
        for i, value in enumerate(values):
            out.append(value.rjust(widths[i]) if numeric[i] else value.ljust(widths[i]))
        return "  ".join(out).rstrip()

    if title:
        print(title)
    print(line(list(headers)))
    print(line(["-" * w for w in widths]))
    for row in cells:
        print(line(row))
    print()
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _is_number(cell: str) -> bool:
    return bool(re.fullmatch(r"-?[\d,]+(\.\d+)?%?|-", cell))


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) with linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * p / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def peak_rss_mb() -> float:
    """The process' peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KB on Linux


def rss_mb() -> float:
    """The process' current resident memory, in MB (peak when /proc is unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mb()


def default_cache_dir(*key: Any) -> Path:
    """A persistent data directory for benchmark runs outside the repository:
    ``$TMPDIR/newsbot-bench-<hash of the repository path, the data path and key>``."""
    digest = hashlib.sha256(
        json.dumps([str(REPO_ROOT), str(SHARED_DATA), *map(str, key)]).encode()
    ).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"newsbot-bench-{digest}"


def machine_header(precision: str | None = None, *, import_torch: bool = True) -> str:
    """Which machine a figure comes from, in two lines: CPU model, cores, the bfloat16 flags
    (about 3x apart in model speed), torch's thread count and the embedding ``precision``
    (``-`` when not given). Torch is imported for its thread count unless ``import_torch``
    is false and it is not loaded yet (then ``-``); without torch installed it is ``-``."""
    from embeddings.precision import cpu_flags, cpu_model  # numpy only, no torch

    model, flags = cpu_model(), cpu_flags()
    threads = "-"
    if import_torch or "torch" in sys.modules:
        try:
            import torch

            threads = str(torch.get_num_threads())
        except ImportError:
            pass

    def has(flag: str) -> str:
        return "yes" if flag in flags else "no"

    return (
        f"machine: {model}, {os.cpu_count()} cores, avx512_bf16 {has('avx512_bf16')}, "
        f"amx_bf16 {has('amx_bf16')}\n"
        f"torch threads: {threads}, embedding precision: {precision or '-'}"
    )


def print_machine_header(precision: str | None = None, *, import_torch: bool = True) -> None:
    """:func:`machine_header` and a blank line on stdout, above the tables."""
    print(machine_header(precision, import_torch=import_torch))
    print()
    sys.stdout.flush()


@contextlib.asynccontextmanager
async def sample_corpus_services(embedder: Any, prefix: str) -> AsyncIterator[Any]:
    """Services over the shipped sample corpus, ingested into a temporary data directory
    (indexed with ``embedder``); removed afterwards."""
    from bot.services import Services
    from bot.settings import Settings
    from corpus.ingest import ingest_results
    from corpus.readers.dispatch import read_path
    from corpus.store import Store

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        settings = Settings(data_dir=Path(tmp))
        store = await Store.open(settings.db_path)
        await ingest_results(store, read_path(REPO_ROOT / "corpus" / "samples"))
        await store.close()
        services = await Services.open(settings, embedder=embedder)
        try:
            yield services
        finally:
            await services.close()


def log(message: str) -> None:
    """A progress line on stderr (the tables go to stdout)."""
    print(message, file=sys.stderr, flush=True)


def run_benchmark(prog: str, parser: Any, main_async: Any) -> int:
    """The shared ``main()`` of the RealTime QA benchmarks: parse the flags, find the data
    (or exit 0 saying it is missing), check ``--months``, run ``main_async(args, root)``."""
    import asyncio

    args = parser.parse_args()
    root = require_data(prog=prog)
    try:
        parse_months(getattr(args, "months", None))
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    asyncio.run(main_async(args, root))
    return 0
