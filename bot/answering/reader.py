"""The span reader: which words of the retrieved passages answer the question, and how sure.

A 6-layer BERT (the packaged all-MiniLM-L6-v2, the same weights the embedder uses) reads
``[CLS] question [SEP] passage [SEP]`` and scores every passage token as the start and the
end of the answer. What the project trains and ships is small: low-rank adapters (LoRA) on
every linear layer, the layer norms and a start/end head, in ``weights/reader.safetensors``
(see the README's model card and ``benchmarks/train_reader.py``). At load time the adapters
are merged into the base weights, so reading costs exactly a plain MiniLM forward pass.

Scores are comparable across passages: training normalizes the start (and end) scores of
all passages of one question together ("shared normalization", Clark & Gardner 2018), with
each passage's ``[CLS]`` standing for "no answer here". So one softmax over every token of
every passage read gives the probability of each span and of "no answer" at once.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

log = logging.getLogger(__name__)
T = TypeVar("T")

WEIGHTS_PATH = Path(__file__).resolve().parents[2] / "weights" / "reader.safetensors"
# Linear layers of a BERT block that get adapters (names as in transformers' BertModel).
LORA_TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
MAX_LENGTH = 192  # tokens of question + passage; passages are a few sentences
MAX_QUESTION_TOKENS = 48
MAX_ANSWER_TOKENS = 16


@dataclass(frozen=True)
class Span:
    """A candidate answer: ``passages[passage][start:end]`` with its log-probability."""

    passage: int
    start: int
    end: int
    text: str
    logprob: float


@dataclass(frozen=True)
class Reading:
    """What the reader found in a batch of passages read together."""

    spans: tuple[Span, ...]  # best first, equal texts not merged
    null_logprob: float  # log P(no passage holds the answer)
    passage_probs: tuple[float, ...] = ()  # P(the answer starts in passage i)

    def best_answers(self, limit: int = 5) -> list[tuple[str, float, Span]]:
        """Answers best first, each with its probability and its best span.

        One answer's probability is spread over its spellings: the same text in several
        passages, and overlapping spans of one passage ("General Ahmad Reza Radan" inside
        "Brigadier General Ahmad Reza Radan"). Both are summed into the best span's answer.
        """
        groups: list[tuple[str, list[Span], list[float]]] = []  # key, spans, probability
        for span in self.spans:
            key = " ".join(span.text.lower().split()).strip(" .,;:'\"“”‘’")
            prob = math.exp(span.logprob)
            for gkey, members, mass in groups:
                if gkey == key or any(
                    m.passage == span.passage and m.start < span.end and span.start < m.end
                    for m in members
                ):
                    members.append(span)
                    mass[0] += prob
                    break
            else:
                groups.append((key, [span], [prob]))
        ranked = sorted(groups, key=lambda g: -g[2][0])
        total = sum(g[2][0] for g in groups) + math.exp(self.null_logprob)
        return [(g[1][0].text, g[2][0] / total, g[1][0]) for g in ranked[:limit]]

    @property
    def null_prob(self) -> float:
        """P(no answer in the passages read), normalized like :meth:`best_answers`."""
        null = math.exp(self.null_logprob)
        return null / (null + sum(math.exp(s.logprob) for s in self.spans))


# -- the model -----------------------------------------------------------------------------


def build_model(base_path: str, rank: int = 32, alpha: float = 64.0) -> Any:
    """MiniLM with LoRA adapters on ``LORA_TARGETS`` and a start/end head (torch module)."""
    import torch
    from torch import nn
    from transformers import AutoModel

    class LoRALinear(nn.Module):
        """``base(x) + (x @ A^T @ B^T) * alpha / rank``; B starts at zero (no change)."""

        def __init__(self, base: nn.Linear) -> None:
            super().__init__()
            self.base = base
            self.scale = alpha / rank
            self.lora_a = nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(rank))
            self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))

        def forward(self, x: Any) -> Any:
            return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale

        def merged(self) -> nn.Linear:
            with torch.no_grad():
                self.base.weight += (self.lora_b @ self.lora_a) * self.scale
            return self.base

    class SpanReaderModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(base_path)
            self.head = nn.Linear(self.bert.config.hidden_size, 2)
            for p in self.bert.parameters():
                p.requires_grad = False
            for layer in self.bert.encoder.layer:
                for target in LORA_TARGETS:
                    parent_name, _, leaf = target.rpartition(".")
                    parent = layer.get_submodule(parent_name)
                    setattr(parent, leaf, LoRALinear(getattr(parent, leaf)))
            for name, p in self.bert.named_parameters():
                if "LayerNorm" in name:
                    p.requires_grad = True

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
            ).last_hidden_state
            logits = self.head(hidden).float()
            return logits[..., 0], logits[..., 1]

        def trainable_state(self) -> dict[str, Any]:
            """What is saved: adapters, layer norms, head (a few MB)."""
            return {
                name: p.detach().clone() for name, p in self.named_parameters() if p.requires_grad
            }

        def merge_adapters(self) -> None:
            """Fold every adapter into its base layer (inference: no extra cost)."""
            for layer in self.bert.encoder.layer:
                for target in LORA_TARGETS:
                    parent_name, _, leaf = target.rpartition(".")
                    parent = layer.get_submodule(parent_name)
                    module = getattr(parent, leaf)
                    if isinstance(module, LoRALinear):
                        setattr(parent, leaf, module.merged())

    return SpanReaderModel()


def window_around(
    text: str, sentences: Sequence[tuple[int, int]], index: int, max_words: int = 90
) -> tuple[int, int]:
    """The character span of sentence ``index`` widened by its neighbours (the one before
    first, then the one after, alternately) while the window stays within ``max_words``:
    the passage the reader sees for one evidence sentence, in training and in answering."""
    lo = hi = index
    words = len(text[sentences[index][0] : sentences[index][1]].split())
    grew = True
    while grew:
        grew = False
        for step in (-1, 1):
            j = lo - 1 if step < 0 else hi + 1
            if 0 <= j < len(sentences):
                extra = len(text[sentences[j][0] : sentences[j][1]].split())
                if words + extra <= max_words:
                    words += extra
                    lo, hi = (j, hi) if step < 0 else (lo, j)
                    grew = True
    return sentences[lo][0], sentences[hi][1]


def encode_pairs(tokenizer: Any, question: str, passages: Sequence[str]) -> Any:
    """Tokenize (question, passage) pairs with character offsets into each passage."""
    q_ids = tokenizer(question, add_special_tokens=False)["input_ids"][:MAX_QUESTION_TOKENS]
    short_question = tokenizer.decode(q_ids) if q_ids else question
    return tokenizer(
        [short_question] * len(passages),
        list(passages),
        truncation="only_second",
        max_length=MAX_LENGTH,
        padding=True,
        return_offsets_mapping=True,
        return_tensors="pt",
    )


def passage_mask(encoding: Any) -> np.ndarray:
    """(passages, tokens) bool: tokens of the passage (sequence 1), not question or padding."""
    rows = []
    for i in range(encoding["input_ids"].shape[0]):
        ids = encoding.sequence_ids(i)
        rows.append([sid == 1 for sid in ids])
    return np.asarray(rows, dtype=bool)


def decode_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    mask: np.ndarray,
    offsets: np.ndarray,
    passages: Sequence[str],
    top: int = 20,
) -> Reading:
    """Shared-normalized span log-probabilities over all passages, and the null's.

    ``start_logits``/``end_logits``/``mask`` are (passages, tokens); column 0 is ``[CLS]``.
    """
    neg = -1e9
    allowed = mask.copy()
    allowed[:, 0] = True  # [CLS]: "no answer in this passage"
    s = np.where(allowed, start_logits, neg)
    e = np.where(allowed, end_logits, neg)
    s = s - _logsumexp(s.ravel())
    e = e - _logsumexp(e.ravel())
    null = _logsumexp(s[:, 0]) + _logsumexp(e[:, 0])
    spans: list[Span] = []
    for p in range(s.shape[0]):
        tokens = np.flatnonzero(mask[p])
        if tokens.size == 0:
            continue
        ps, pe = s[p, tokens], e[p, tokens]
        # best end for each start within MAX_ANSWER_TOKENS (tokens are contiguous)
        n = tokens.size
        best_per_start = []
        for i in range(n):
            j_hi = min(n, i + MAX_ANSWER_TOKENS)
            j = i + int(np.argmax(pe[i:j_hi]))
            best_per_start.append((ps[i] + pe[j], i, j))
        best_per_start.sort(reverse=True)
        for score, i, j in best_per_start[:top]:
            char_start = int(offsets[p, tokens[i], 0])
            char_end = int(offsets[p, tokens[j], 1])
            text = passages[p][char_start:char_end]
            if text.strip():
                spans.append(Span(p, char_start, char_end, text, float(score)))
    spans.sort(key=lambda sp: -sp.logprob)
    starts_in = np.where(mask, np.exp(s), 0.0).sum(axis=1)
    return Reading(tuple(spans[:top]), float(null), tuple(float(x) for x in starts_in))


def _logsumexp(values: np.ndarray) -> float:
    peak = float(np.max(values))
    return peak + math.log(float(np.sum(np.exp(values - peak))))


# -- the reader the engine uses ---------------------------------------------------------------


class SpanReader:
    """The trained reader on the CPU, on one thread of its own (like the embedder, so
    torch's thread pools of different callers never spin against each other), in the
    precision measured fastest with the same outputs (``embeddings.precision``)."""

    def __init__(
        self,
        weights: Path = WEIGHTS_PATH,
        base_model: str = "all-MiniLM-L6-v2",
        precision: str = "auto",
        cache_dir: Path | None = None,
    ) -> None:
        self.weights = Path(weights)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reader")
        self._worker_ident = self._worker.submit(threading.get_ident).result()
        self._model, self._tokenizer = self._on_worker(self._load, base_model)
        if precision == "auto":
            precision = self._on_worker(self._calibrate, cache_dir)
        elif precision == "bf16":
            self._on_worker(self._to_bf16)
        self.precision = precision
        log.info("loaded the reader %s (%s)", self.weights.name, self.precision)

    def _load(self, base_model: str) -> tuple[Any, Any]:
        from safetensors.torch import load_file
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        from embeddings.embedder import resolve_model_path

        if not self.weights.is_file():
            raise FileNotFoundError(f"reader weights not found: {self.weights}")
        hf_logging.disable_progress_bar()
        path = resolve_model_path(base_model)
        state = load_file(str(self.weights))
        meta = _metadata(self.weights)
        model = build_model(
            path, rank=int(meta.get("rank", 32)), alpha=float(meta.get("alpha", 64))
        )
        missing = set(model.trainable_state()) - set(state)
        if missing:
            raise ValueError(f"reader weights lack {len(missing)} tensors, e.g. {min(missing)}")
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
        model.merge_adapters()
        model.eval()
        return model, AutoTokenizer.from_pretrained(path)

    def _to_bf16(self) -> None:
        import torch

        self._model = self._model.to(torch.bfloat16)

    def _calibrate(self, cache_dir: Path | None) -> str:
        """Measure (or recall) the fastest precision whose scores match fp32's."""
        import copy

        import torch

        from embeddings.embedder import calibration_texts
        from embeddings.precision import choose_precision

        models = {"fp32": self._model}
        question = "Who signed the memorandum with Russia's Interior Ministry?"
        enc = encode_pairs(self._tokenizer, question, calibration_texts(count=8, words=90))

        def run(precision: str) -> np.ndarray:
            if precision not in models:
                models[precision] = copy.deepcopy(self._model).to(torch.bfloat16)
            start, end = self._logits(models[precision], enc)
            return np.concatenate([start, end], axis=1)

        key = f"reader {self.weights.name} {self.weights.stat().st_size}"
        choice = choose_precision(key, run, cache_dir)
        self._model = models.get(choice.precision, self._model)
        if choice.precision == "bf16" and "bf16" not in models:
            self._to_bf16()
        return choice.precision

    def _on_worker(self, fn: Callable[..., T], *args: Any) -> T:
        if threading.get_ident() == self._worker_ident:
            return fn(*args)
        return self._worker.submit(fn, *args).result()

    def read(self, question: str, passages: Sequence[str]) -> Reading:
        """Read all ``passages`` in one batch; spans are offsets into each passage."""
        if not passages:
            return Reading((), 0.0)
        return self._on_worker(self._read, question, list(passages))

    async def aread(self, question: str, passages: Sequence[str]) -> Reading:
        """:meth:`read` without blocking the event loop (or holding one of its threads)."""
        import asyncio

        if not passages:
            return Reading((), 0.0)
        return await asyncio.wrap_future(self._worker.submit(self._read, question, list(passages)))

    @staticmethod
    def _logits(model: Any, enc: Any) -> tuple[Any, Any]:
        import torch

        with torch.inference_mode():
            start, end = model(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
        return start.float().numpy(), end.float().numpy()

    def _read(self, question: str, passages: list[str]) -> Reading:
        enc = encode_pairs(self._tokenizer, question, passages)
        start, end = self._logits(self._model, enc)
        return decode_spans(start, end, passage_mask(enc), enc["offset_mapping"].numpy(), passages)


def load_reader(settings: Any) -> SpanReader | None:
    """The reader for a process' settings, or None (turned off, or no weights: logged)."""
    if settings.reader_weights == "off":
        return None
    weights = Path(settings.reader_weights) if settings.reader_weights else WEIGHTS_PATH
    if not weights.is_file():
        log.warning("no reader weights at %s: answers will be quotes only", weights)
        return None
    return SpanReader(
        weights, settings.model, settings.reader_precision, cache_dir=settings.cache_dir
    )


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return dict(fh.metadata() or {})
