"""Which precision a model runs in on this machine: measured once, not guessed from CPU flags.

CPU flags say what a CPU can do, not how fast: bfloat16 was 2.6x faster than fp32 on a
CPU with AMX and 2.4x on one with only AVX512-BF16, and a CPU without either would be
slower in bf16 than in fp32. So ``auto`` runs a short calibration the first time a model
starts on a machine: a fixed batch in every precision the CPU can run, keeping the fastest
whose outputs stay within cosine 0.99 of fp32's. The choice is cached (a small JSON file
in the data directory's ``cache/``), keyed by the CPU model, the core count, the library
versions and the model, so a data directory moved to another CPU measures again, and
logged with its figures. A copy in the user's cache (:func:`machine_cache_dir`) spares a
new data directory on the same machine the measuring.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")
MIN_COSINE = 0.99  # lowest row-wise cosine to fp32 a faster precision may have
CACHE_FILE = "precision.json"
_memo: dict[str, Choice] = {}  # per process, for callers without a data directory
_holding: set[tuple[str, Path]] = set()  # (key, cache dir) known to hold the choice
_lock = threading.Lock()


@dataclass(frozen=True)
class Choice:
    """The precision chosen for a model on a machine, with what was measured."""

    precision: str
    seconds: dict[str, float]  # precision -> seconds for the calibration batch
    cosine: dict[str, float]  # precision -> lowest row cosine to fp32
    key: str


def cpu_flags() -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def cpu_model() -> str:
    """The CPU's model name."""
    try:
        match = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_cache_dir() -> Path:
    """This user's cache for what depends on the machine and the model only, not on a
    data directory (``$XDG_CACHE_HOME/newsbot``, else ``~/.cache/newsbot``): a second data
    directory on the same machine reuses the measurements and the exported query model."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "newsbot"


def available_precisions() -> tuple[str, ...]:
    """Precisions worth measuring here: bf16 only where the CPU has bf16 instructions
    (emulated bf16 is always slower than fp32)."""
    flags = cpu_flags()
    if flags & {"amx_bf16", "avx512_bf16"}:
        return PRECISIONS
    return ("fp32",)


def machine_key(model: str) -> str:
    """What a measured choice depends on: CPU, cores, library versions, the model."""
    import torch
    import transformers

    parts = [
        cpu_model(),
        f"{os.cpu_count()} cores",
        f"torch {torch.__version__}",
        f"transformers {transformers.__version__}",
        model,
    ]
    return " | ".join(parts)


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two same-shaped float arrays."""
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    b = b.reshape(b.shape[0], -1).astype(np.float64)
    dots = np.sum(a * b, axis=1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray(dots / np.maximum(norms, 1e-12))


def choose_precision(
    model: str,
    run: Callable[[str], np.ndarray],
    cache_dir: Path | None,
    repeats: int = 2,
    candidates: Sequence[str] | None = None,
) -> Choice:
    """The cached choice for ``model`` on this machine, or a new calibration.

    ``run(candidate)`` computes the calibration batch's outputs with that candidate
    (``candidates``: the precisions this CPU has, fp32 first, unless given; the first is
    the reference the others' rows are compared with by cosine); each is timed after one
    warm-up call, and the fastest within ``MIN_COSINE`` of the reference is chosen.
    """
    candidates = tuple(candidates or available_precisions())
    key = machine_key(model)
    places = [cache_dir, machine_cache_dir()] if cache_dir is not None else []
    with _lock:
        # Once a choice is in memory, only a data directory not yet seen is read.
        unseen = [p for p in places if key not in _memo or (key, p) not in _holding]
        found = {place: _read_cache(place, key) for place in unseen}
        cached = _memo.get(key) or next((c for c in found.values() if c), None)
        if cached is not None:
            _memo[key] = cached
            for place, entry in found.items():
                if entry is None:
                    _write_cache(place, cached)  # the data directory keeps its own copy
                _holding.add((key, place))
            return cached
        choice = _calibrate(key, run, repeats, candidates)
        _memo[key] = choice
        for place in places:
            _write_cache(place, choice)
            _holding.add((key, place))
    log.info(
        "precision for %s: %s (calibration: %s)",
        model,
        choice.precision,
        ", ".join(
            f"{p} {choice.seconds[p] * 1000:.0f} ms cos {choice.cosine[p]:.4f}"
            for p in choice.seconds
        ),
    )
    return choice


def _calibrate(
    key: str, run: Callable[[str], np.ndarray], repeats: int, candidates: Sequence[str]
) -> Choice:
    seconds: dict[str, float] = {}
    cosine: dict[str, float] = {}
    reference: np.ndarray | None = None
    for precision in candidates:
        run(precision)  # warm-up: first calls pay for allocation and kernel selection
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            out = run(precision)
            best = min(best, time.perf_counter() - started)
        if reference is None:
            reference = out  # the first candidate is the reference
        seconds[precision] = best
        cosine[precision] = float(np.min(row_cosines(out, reference)))
    usable = [p for p in seconds if cosine[p] >= MIN_COSINE]
    return Choice(min(usable, key=lambda p: seconds[p]), seconds, cosine, key)


def _read_cache(cache_dir: Path | None, key: str) -> Choice | None:
    if cache_dir is None:
        return None
    try:
        entry = json.loads((cache_dir / CACHE_FILE).read_text()).get(key)
        return Choice(**entry) if entry and entry.get("precision") else None
    except (OSError, ValueError, TypeError):
        return None  # missing or damaged: measure again


def _write_cache(cache_dir: Path | None, choice: Choice) -> None:
    if cache_dir is None:
        return
    path = cache_dir / CACHE_FILE
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            entries = {}
        entries[choice.key] = asdict(choice)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(entries, indent=1))
        tmp.replace(path)
    except OSError as exc:  # a read-only data directory still works, it just re-measures
        log.warning("could not cache the precision choice in %s: %s", path, exc)
