"""Train the span reader (``bot/answering/reader.py``) and write ``weights/reader.safetensors``.

Data (``../shared/data``; a clone without it exits 0 saying so):

* ``reading-qa/``: SQuAD v1.1 dev and three SQuADShifts sets, human-labelled spans. One
  article in ten (by a hash of file and title) is held out: its questions are never
  trained on and give the reading figure (EM/F1, SQuAD scoring, best over references).
  A question is trained with its paragraph (cut to a window around the answer) and, in three
  of ten, another paragraph of the same article that does not hold the answer; one
  question in ten sees only such paragraphs and must say "no answer".
* ``realtimeqa-train/``: the news quizzes of June-December 2022 and April-September 2023
  with their search results, distantly supervised: the passages (a sentence with its
  neighbours, as the answer engine reads them) of the question's articles that contain
  the answer text are positives, the passages that share most words with the question but
  lack the answer are negatives, and a question whose articles never contain the answer
  teaches "no answer".
* ``realtimeqa-2023q1/`` (the development set) and the sample questions are **not** read.

Every question is one group; the start and end scores of all passages of a group are
normalized together, with each passage's ``[CLS]`` meaning "not here", so scores compare
across passages and the probability of "no answer" comes out of the same softmax.

Fixed seed, bfloat16 autocast, 2 threads; a checkpoint every ``--checkpoint-every`` steps
in ``--work-dir`` (resumed automatically), so a session that ends mid-run loses minutes.

    python benchmarks/train_reader.py                 # train (resumes), evaluate, write weights
    python benchmarks/train_reader.py --eval-only     # evaluate weights/reader.safetensors
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

SEED = 1234
READING_FILES = (
    "squad-dev-v1.1.json",
    "squadshifts-new_wiki_v1.0.json",
    "squadshifts-reddit_v1.0.json",
    "squadshifts-amazon_reviews_v1.0.json",
)
PASSAGE_WORDS = 90  # a sentence and its neighbours, as the engine reads them
READING_WINDOW_WORDS = 100
NEWS_PASSAGES = 4
STOP = set(
    """a an the of in on at to for from by with and or but is are was were be been this that
    these those which who whom what when where why how did does do has have had it its as
    after before over into about than then new week this year""".split()
)


@dataclass
class Group:
    """One question and the passages read together; ``answers`` are char spans per passage."""

    question: str
    passages: list[str]
    answers: list[list[tuple[int, int]]]


# -- reading-qa ---------------------------------------------------------------------------


def is_held_out(file: str, title: str) -> bool:
    """One article in ten, fixed by a hash: never trained on."""
    return int(hashlib.sha256(f"{file}/{title}".encode()).hexdigest(), 16) % 10 == 0


def held_out_reading(root: Path) -> list[dict[str, Any]]:
    """The held-out reading questions (``{"file", "question", "context", "answers"}``)."""
    held = []
    for name in READING_FILES:
        for article in json.loads((root / name).read_text(encoding="utf-8"))["data"]:
            if not is_held_out(name, str(article.get("title", ""))):
                continue
            for para in article["paragraphs"]:
                for qa in para["qas"]:
                    answers = [a["text"] for a in qa["answers"] if a["text"].strip()]
                    if answers:
                        held.append(
                            {
                                "file": name,
                                "question": qa["question"],
                                "context": para["context"],
                                "answers": answers,
                            }
                        )
    return held


def _word_window(text: str, around: tuple[int, int], max_words: int, rng: random.Random) -> int:
    """Start offset of a window of ``max_words`` words of ``text`` holding ``around``."""
    words = [m.start() for m in re.finditer(r"\S+", text)]
    if len(words) <= max_words:
        return 0
    first = sum(1 for w in words if w <= around[0]) - 1
    last = sum(1 for w in words if w < around[1]) - 1
    lo = max(0, last - max_words + 1)
    hi = min(first, len(words) - max_words)
    return words[rng.randint(lo, max(lo, hi))]


def _cut(text: str, start: int, max_words: int) -> str:
    words = list(re.finditer(r"\S+", text[start:]))
    if len(words) <= max_words:
        return text[start:]
    return text[start : start + words[max_words - 1].end()]


def load_reading(root: Path, rng: random.Random) -> list[Group]:
    """Training groups of every question outside the held-out articles."""
    train: list[Group] = []
    for name in READING_FILES:
        for article in json.loads((root / name).read_text(encoding="utf-8"))["data"]:
            if is_held_out(name, str(article.get("title", ""))):
                continue  # see held_out_reading
            paragraphs = article["paragraphs"]
            for pi, para in enumerate(paragraphs):
                for qa in para["qas"]:
                    answers = [a for a in qa["answers"] if a["text"].strip()]
                    if not answers:
                        continue
                    others = [p["context"] for j, p in enumerate(paragraphs) if j != pi]
                    others = [o for o in others if answers[0]["text"] not in o]
                    train.append(
                        _reading_group(qa["question"], para["context"], answers[0], others, rng)
                    )
    return train


def _reading_group(
    question: str, context: str, answer: dict[str, Any], others: list[str], rng: random.Random
) -> Group:
    span = (int(answer["answer_start"]), int(answer["answer_start"]) + len(answer["text"]))
    negatives = [
        _cut(o, _word_window(o, (0, 1), READING_WINDOW_WORDS, rng), READING_WINDOW_WORDS)
        for o in rng.sample(others, min(2, len(others)))
    ]
    if negatives and rng.random() < 0.1:
        return Group(question, negatives, [[] for _ in negatives])
    start = _word_window(context, span, READING_WINDOW_WORDS, rng)
    passage = _cut(context, start, READING_WINDOW_WORDS)
    gold = (span[0] - start, span[1] - start)
    passages, answers = [passage], [[gold] if gold[1] <= len(passage) else []]
    if negatives and rng.random() < 0.3:
        passages.append(negatives[0])
        answers.append([])
    order = list(range(len(passages)))
    rng.shuffle(order)
    return Group(question, [passages[i] for i in order], [answers[i] for i in order])


# -- realtimeqa-train -----------------------------------------------------------------------


def answer_pattern(answer: str) -> re.Pattern[str] | None:
    """A case-insensitive, whole-word pattern for a quiz answer (quotes and end punctuation
    dropped, any white space between words)."""
    core = answer.strip().strip("\"'“”‘’.,;:!?() ")
    if len(core) < 2:
        return None
    words = [re.escape(w) for w in core.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def _terms(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP and len(w) > 1}


def load_news(root: Path, rng: random.Random) -> list[Group]:
    """Distantly supervised groups from the news quizzes' own search results."""
    from bot.answering.reader import window_around
    from corpus.text import sentence_spans

    groups: list[Group] = []
    questions = common.load_questions(root)
    results: dict[str, list[dict[str, Any]]] = {}
    for path in common.data_files(root, "_gcs.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                results[str(record["question_id"])] = record.get("search_result") or []
    for q in questions:
        pattern = answer_pattern(q.answer)
        if pattern is None:
            continue
        q_terms = _terms(q.sentence)
        scored: list[tuple[float, str, list[tuple[int, int]]]] = []
        for article in results.get(q.id, []):
            text = str(article.get("text") or "")[:40_000]
            sentences = sentence_spans(text)
            for i, (s, e) in enumerate(sentences):
                overlap = len(q_terms & _terms(text[s:e]))
                if overlap == 0 and not pattern.search(text, s, e):
                    continue
                ws, we = window_around(text, sentences, i, PASSAGE_WORDS)
                passage = text[ws:we]
                spans = [(m.start(), m.end()) for m in pattern.finditer(passage)]
                scored.append((overlap + rng.random() * 0.5, passage, spans))
        scored.sort(key=lambda t: -t[0])
        positives = [t for t in scored if t[2]][:2]
        negatives = [t for t in scored if not t[2]][: NEWS_PASSAGES - len(positives)]
        chosen = positives + negatives
        if not chosen:
            continue
        rng.shuffle(chosen)
        groups.append(Group(q.sentence, [c[1] for c in chosen], [c[2] for c in chosen]))
    return groups


# -- tensors -------------------------------------------------------------------------------


def token_targets(encoding: Any, group: Group) -> tuple[list[list[int]], list[list[int]]]:
    """Start and end token indexes of every answer span, per passage (empty: not here)."""
    starts: list[list[int]] = []
    ends: list[list[int]] = []
    for p, spans in enumerate(group.answers):
        seq = encoding.sequence_ids(p)
        offsets = encoding["offset_mapping"][p].tolist()
        ps: list[int] = []
        pe: list[int] = []
        tokens = [t for t, sid in enumerate(seq) if sid == 1]
        for cs, ce in spans:
            # the first token that ends after the answer starts, the last that starts before
            # it ends; an answer cut off by truncation is not a target
            s_tok = next((t for t in tokens if offsets[t][1] > cs), None)
            e_tok = next((t for t in reversed(tokens) if offsets[t][0] < ce), None)
            if not tokens or offsets[tokens[-1]][1] < ce:
                continue
            if s_tok is not None and e_tok is not None and e_tok >= s_tok:
                ps.append(s_tok)
                pe.append(e_tok)
        starts.append(ps)
        ends.append(pe)
    return starts, ends


def group_loss(torch: Any, start: Any, end: Any, allowed: Any, starts: Any, ends: Any) -> Any:
    """Shared-normalization loss of one group: -log P(gold start) - log P(gold end), each
    marginalized over all gold positions; the [CLS] of every passage when none holds it."""
    flat_allowed = allowed.reshape(-1)
    length = start.shape[1]
    gold_s = [p * length + t for p, ts in enumerate(starts) for t in ts]
    gold_e = [p * length + t for p, ts in enumerate(ends) for t in ts]
    if not gold_s:
        gold_s = gold_e = [p * length for p in range(start.shape[0])]
    loss: Any = 0
    for logits, gold in ((start, gold_s), (end, gold_e)):
        flat = logits.reshape(-1).masked_fill(~flat_allowed, -1e4)
        logp = flat.log_softmax(0)
        loss = loss - torch.logsumexp(logp[torch.tensor(gold)], 0)
    return loss


# -- evaluation ----------------------------------------------------------------------------


def evaluate_reading(reader_fn: Any, held: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """EM/F1 (best over references) on held-out reading questions, per file and overall.

    A context longer than one window is read as overlapping windows in one batch."""
    from benchmarks.answers import f1

    rng = random.Random(SEED)
    sample = rng.sample(held, min(limit, len(held)))
    per_file: dict[str, list[tuple[float, float]]] = {}
    for item in sample:
        context = item["context"]
        windows = _windows(context)
        reading = reader_fn(item["question"], [context[s:e] for s, e in windows])
        pred = reading.spans[0].text if reading.spans else ""
        em = max(
            float(common.normalize_answer(pred) == common.normalize_answer(a))
            for a in item["answers"]
        )
        score = max(f1(pred, a) for a in item["answers"])
        per_file.setdefault(item["file"], []).append((em, score))
    out: dict[str, Any] = {}
    everything = [x for v in per_file.values() for x in v]
    for name, values in sorted(per_file.items()) + [("all", everything)]:
        out[name] = {
            "questions": len(values),
            "EM": sum(v[0] for v in values) / len(values),
            "F1": sum(v[1] for v in values) / len(values),
        }
    return out


def _windows(context: str, words: int = 120, stride: int = 80) -> list[tuple[int, int]]:
    spans = [(m.start(), m.end()) for m in re.finditer(r"\S+", context)]
    if len(spans) <= words:
        return [(0, len(context))]
    out = []
    for i in range(0, len(spans), stride):
        chunk = spans[i : i + words]
        out.append((chunk[0][0], chunk[-1][1]))
        if i + words >= len(spans):
            break
    return out


# -- training ------------------------------------------------------------------------------


def batches(groups: list[Group], passages_per_batch: int) -> list[list[Group]]:
    """Consecutive groups until a batch holds ``passages_per_batch`` passages."""
    out: list[list[Group]] = []
    current: list[Group] = []
    count = 0
    for g in groups:
        current.append(g)
        count += len(g.passages)
        if count >= passages_per_batch:
            out.append(current)
            current, count = [], 0
    if current:
        out.append(current)
    return out


def train(args: argparse.Namespace) -> None:
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from transformers import AutoTokenizer

    from bot.answering.reader import build_model, encode_pairs, passage_mask
    from embeddings.embedder import resolve_model_path

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    rng = random.Random(SEED)
    base = resolve_model_path("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(base)
    reading_root = common.require_data("reading-qa", prog="train_reader.py")
    news_root = common.require_data("realtimeqa-train", prog="train_reader.py")
    common.log("building training groups ...")
    reading_train = load_reading(reading_root, rng)
    held = held_out_reading(reading_root)
    news = load_news(news_root, rng)
    with_answer = sum(1 for g in news if any(g.answers))
    common.log(
        f"reading-qa: {len(reading_train):,} training questions, {len(held):,} held out; "
        f"news: {len(news):,} questions ({with_answer:,} with the answer in a passage)"
    )
    groups = reading_train + news * args.news_repeat
    rng.shuffle(groups)
    plan = batches(groups, args.batch_passages)[: args.steps]
    total = len(plan)

    model = build_model(base, rank=args.rank, alpha=args.alpha)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup))),
    )
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / "checkpoint.pt"
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        common.log(f"resumed from {ckpt} at step {step}/{total}")
    model.train()
    started = time.perf_counter()
    seen = 0
    running = 0.0
    while step < total:
        batch = plan[step]
        encodings = [encode_pairs(tokenizer, g.question, g.passages) for g in batch]
        width = max(int(e["input_ids"].shape[1]) for e in encodings)
        ids = torch.cat([_pad(torch, e["input_ids"], width) for e in encodings])
        att = torch.cat([_pad(torch, e["attention_mask"], width) for e in encodings])
        typ = torch.cat([_pad(torch, e["token_type_ids"], width) for e in encodings])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            start_logits, end_logits = model(ids, att, typ)
        loss: Any = 0
        row = 0
        for g, e in zip(batch, encodings, strict=True):
            n = len(g.passages)
            mask = np.zeros((n, width), dtype=bool)
            pm = passage_mask(e)
            mask[:, : pm.shape[1]] = pm
            mask[:, 0] = True
            starts, ends = token_targets(e, g)
            loss = loss + group_loss(
                torch,
                start_logits[row : row + n],
                end_logits[row : row + n],
                torch.from_numpy(mask),
                starts,
                ends,
            )
            row += n
        loss = loss / len(batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        step += 1
        seen += len(batch)
        value = float(loss.detach())
        running = 0.98 * running + 0.02 * value if step > 1 else value
        if step % 25 == 0 or step == total:
            rate = seen / (time.perf_counter() - started)
            common.log(
                f"step {step}/{total}  loss {running:.3f}  {rate:.1f} questions/s  "
                f"eta {(total - step) * len(batch) / max(rate, 1e-9) / 60:.0f} min"
            )
        if step % args.checkpoint_every == 0 or step == total:
            torch.save(
                {
                    "model": model.trainable_state(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "step": step,
                    "torch_rng": torch.get_rng_state(),
                },
                work / "checkpoint.tmp",
            )
            (work / "checkpoint.tmp").replace(ckpt)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.to(torch.float16).contiguous() for k, v in model.trainable_state().items()}
    meta = {
        "rank": str(args.rank),
        "alpha": str(args.alpha),
        "base": "all-MiniLM-L6-v2",
        "steps": str(total),
        "seed": str(SEED),
    }
    save_file(state, str(out), metadata=meta)
    common.log(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def _pad(torch: Any, tensor: Any, width: int) -> Any:
    extra = width - tensor.shape[1]
    return torch.nn.functional.pad(tensor, (0, extra)) if extra else tensor


def report(args: argparse.Namespace) -> None:
    """Reading EM/F1 of the written weights on the held-out reading questions."""
    from bot.answering.reader import SpanReader

    held = held_out_reading(common.require_data("reading-qa", prog="train_reader.py"))
    reader = SpanReader(Path(args.out))
    common.print_machine_header(reader.precision)
    started = time.perf_counter()
    figures = evaluate_reading(reader.read, held, args.eval_questions)
    seconds = time.perf_counter() - started
    rows = [[name, v["questions"], v["EM"], v["F1"]] for name, v in figures.items()]
    common.print_table(
        ["held-out reading-qa (unseen articles)", "questions", "EM", "F1"],
        rows,
        title=f"reader {args.out}: {seconds:.0f} s to read",
    )


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2200, help="optimizer steps")
    parser.add_argument("--batch-passages", type=int, default=16)
    parser.add_argument("--news-repeat", type=int, default=3, help="news groups seen N times")
    parser.add_argument("--lr", type=float, default=6e-4)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--alpha", type=float, default=64.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument(
        "--work-dir", default=str(common.default_cache_dir("reader-training")), help="checkpoints"
    )
    parser.add_argument("--out", default="weights/reader.safetensors")
    parser.add_argument("--eval-questions", type=int, default=2000)
    parser.add_argument("--eval-only", action="store_true")
    args = parser.parse_args()
    common.require_data("reading-qa", prog="train_reader.py")
    if not args.eval_only:
        train(args)
    report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
