"""A fast encoder for single queries: the packaged sentence-transformers model run by onnxruntime.

On this project's 2-core CPU one short query takes ~2 ms in onnxruntime fp32 against ~9.5 ms in
torch bf16 (``benchmarks/query_encoding.py`` measures it). The model's transformer is exported to
ONNX once, into a cache directory the caller owns; later starts load that file and need no torch.
Tokenization, mean pooling and normalization reproduce sentence-transformers, so the vectors are
the fp32 ones of ``SentenceTransformer(path).encode(..., normalize_embeddings=True)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.embedder import resolve_model_path, unit_rows

log = logging.getLogger(__name__)

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_runtime_available() -> bool:
    """Whether onnxruntime can be imported (so :class:`OnnxQueryEncoder` can run)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxQueryEncoder:
    """A sentence-transformers BERT model (mean pooling) run by onnxruntime on one CPU thread.

    ``cache_dir`` holds the exported model, one file per weights file, torch and onnxruntime
    version: a change of any of them exports anew instead of running a stale graph.
    """

    def __init__(self, model: str, cache_dir: str | os.PathLike[str]) -> None:
        from transformers import AutoTokenizer

        self.model_path = Path(resolve_model_path(model))
        self.cache_dir = Path(cache_dir)
        self.max_seq_length = _max_seq_length(self.model_path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_path))
        self.name = Path(model).name  # "all-MiniLM-L6-v2" also for a hub-style or path name
        self.onnx_path = self.cache_dir / f"{self.name}-{self._cache_key()}.onnx"
        self._session = self._load_or_export()
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: float32 array of shape (len(texts), dim), rows of norm 1."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation="longest_first",
            max_length=self.max_seq_length,
            return_tensors="np",
        )
        feeds = {name: np.asarray(batch[name], dtype=np.int64) for name in _INPUTS}
        tokens = self._session.run(None, feeds)[0].astype(np.float32, copy=False)
        # Mean over the real tokens only, as sentence-transformers' Pooling(mean) does.
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        summed = (tokens * mask).sum(axis=1)
        return unit_rows(summed / np.clip(mask.sum(axis=1), 1e-9, None))

    def _cache_key(self) -> str:
        """Hash of the weights and of the exporter's and runtime's versions."""
        import onnxruntime

        digest = hashlib.sha256()
        with (self.model_path / "model.safetensors").open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
        # The torch version comes from the package metadata: importing torch costs ~1 s and a
        # start that finds the cached file has no other use for it.
        digest.update(f"torch={metadata.version('torch')}".encode())
        digest.update(f"onnxruntime={onnxruntime.__version__}".encode())
        digest.update(f"max_seq_length={self.max_seq_length}".encode())
        return digest.hexdigest()[:16]

    def _load_or_export(self) -> Any:
        if self.onnx_path.exists():
            try:
                return _session(self.onnx_path)
            except Exception as exc:  # onnxruntime raises its own, unexported error types
                # Written atomically, so this is damage from outside (disk, a manual copy).
                log.warning(
                    "cached ONNX model %s is unreadable (%s); exporting anew", self.onnx_path, exc
                )
                self.onnx_path.unlink(missing_ok=True)
        self.export()
        return _session(self.onnx_path)

    def export(self) -> None:
        """Export the model's transformer to ``onnx_path``, atomically (temp file + rename)."""
        if find_spec("onnx") is None:
            # torch's legacy exporter imports it unconditionally.
            raise RuntimeError("exporting to ONNX needs the package onnx (pip install onnx)")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.cache_dir, prefix=".export-", suffix=".onnx")
        os.close(fd)
        try:
            _export_transformer(self.model_path, Path(tmp_name), self.tokenizer)
            os.replace(tmp_name, self.onnx_path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        # Exports for older weights or versions are never read again: 90 MB each.
        for stale in self.cache_dir.glob(f"{self.name}-*.onnx"):
            if stale != self.onnx_path:
                stale.unlink(missing_ok=True)
        log.info("exported %s to %s", self.name, self.onnx_path)


def _max_seq_length(model_path: Path) -> int:
    """sentence-transformers' truncation length (the tokenizer's own limit is larger: 512)."""
    config = model_path / "sentence_bert_config.json"
    if config.exists():
        return int(json.loads(config.read_text())["max_seq_length"])
    return 256


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread each: the process has other work for the second core, and a single short
    # query gains nothing from splitting.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export_transformer(model_path: Path, target: Path, tokenizer: Any) -> None:
    import torch
    import transformers
    from transformers import AutoModel

    transformers.logging.disable_progress_bar()  # no "Loading weights" bar in the logs
    bert = AutoModel.from_pretrained(str(model_path), attn_implementation="eager")

    class Transformer(torch.nn.Module):
        """Token embeddings of the BERT encoder, with the attention mask built here.

        transformers' own mask helpers take data-dependent shortcuts (no mask when nothing is
        padded) that tracing would freeze into the graph; an additive mask is always right.
        """

        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
            blocked = 1.0 - attention_mask[:, None, None, :].to(hidden.dtype)
            additive = blocked * torch.finfo(hidden.dtype).min
            return self.bert.encoder(hidden, attention_mask=additive).last_hidden_state

    # eval(): a new module is in training mode, and dropout would be traced into the graph.
    module = Transformer().eval()
    example = tokenizer(["a query", "a longer example sentence"], padding=True, return_tensors="pt")
    dynamic = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "last_hidden_state")}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            tuple(example[name] for name in _INPUTS),
            str(target),
            dynamo=False,  # the dynamo exporter needs onnxscript; this one only onnx
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes=dynamic,
            opset_version=17,
        )
