"""``newsbot ask | chat``: answers in the terminal, as text or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from bot.answering.engine import AnswerEngine
from bot.answering.models import Answer
from bot.services import Services
from bot.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ask and chat commands."""
    p = sub.add_parser("ask", help="answer a question with verbatim quotes")
    p.add_argument("question", nargs="?", help="the question (omit with --batch)")
    p.add_argument("--json", action="store_true", help="print one JSON object per answer")
    p.add_argument("--as-of", type=date.fromisoformat, help="answer as a reader on YYYY-MM-DD")
    p.add_argument(
        "--batch", type=Path, help='JSON lines {"id", "question", "as_of"}; one answer a line'
    )
    p.set_defaults(handler=cmd_ask)

    p = sub.add_parser("chat", help="ask questions interactively")
    p.add_argument("--as-of", type=date.fromisoformat)
    p.set_defaults(handler=cmd_chat)


def format_answer(answer: Answer) -> str:
    """An answer for the terminal: the short answer, then numbered quotes with sources."""
    if answer.abstained:
        return answer.not_found_text
    lines = [answer.headline, ""]
    for i, q in enumerate(answer.quotes, start=1):
        lines.append(f"[{i}] “{q.text}”")
        where = ", ".join(str(x) for x in (q.source, q.title, q.published_at) if x)
        lines.append(f"    — {where}" + (f"\n      {q.url}" if q.url else ""))
    return "\n".join(lines)


async def _engine(settings: Settings) -> tuple[Services, AnswerEngine]:
    services = await Services.open(settings)
    return services, await services.answers()


async def cmd_ask(settings: Settings, args: argparse.Namespace) -> int:
    """Answer one question, or a batch of JSON lines."""
    if not args.question and not args.batch:
        print("newsbot ask: give a question or --batch FILE", file=sys.stderr)
        return 2
    services, engine = await _engine(settings)
    try:
        if args.batch:
            return await _batch(engine, args.batch)
        answer = await engine.answer(args.question, args.as_of)
        if args.json:
            print(json.dumps(answer.as_json(), ensure_ascii=False))
        else:
            print(format_answer(answer))
    finally:
        await services.close()
    return 0


async def _batch(engine: AnswerEngine, path: Path) -> int:
    failures = 0
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                as_of = date.fromisoformat(item["as_of"]) if item.get("as_of") else None
                answer = await engine.answer(str(item["question"]), as_of)
                out = {"id": item.get("id"), **answer.as_json()}
            except (ValueError, KeyError, TypeError) as exc:
                failures += 1
                out = {"id": None, "error": f"line {number}: {type(exc).__name__}: {exc}"}
            print(json.dumps(out, ensure_ascii=False), flush=True)
    return 1 if failures else 0


async def cmd_chat(settings: Settings, args: argparse.Namespace) -> int:
    """Read questions from the terminal until an empty line or end of input."""
    services, engine = await _engine(settings)
    try:
        print("Ask about the news (empty line to quit).")
        while True:
            try:
                question = input("> ").strip()
            except EOFError:
                break
            if not question:
                break
            print(format_answer(await engine.answer(question, args.as_of)))
            print()
    finally:
        await services.close()
    return 0
