"""The ``newsbot`` command line. Each sub-command is a small function in ``bot.commands``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import fields

from bot.settings import Settings, SettingsError

EPILOG = """\
examples:
  newsbot ingest corpus/samples               ingest a directory (txt, json, jsonl, html, md)
  newsbot ingest news.jsonl page.html         ingest files
  newsbot stats                               article and chunk counts, date range, outlets
  newsbot articles --limit 20                 list stored articles
  newsbot delete 42                           delete article 42
  newsbot index                               bring the search index up to date
  newsbot index --rebuild                     rebuild it from scratch
  newsbot search "Zolotov memorandum" --k 5   ranked passages
  newsbot ask "who signed with Zolotov?"      a short answer with verbatim quotes
  newsbot ask --json --as-of 2023-07-01 "..." the answer as one JSON object
  newsbot ask --json --batch questions.jsonl  one answer per JSON line
  newsbot chat                                interactive questions in the terminal
  newsbot run                                 the Telegram bot (long polling)
  newsbot feeds add https://example.org/rss   follow a feed; then: newsbot poll

settings come from NEWSBOT_* environment variables (NEWSBOT_DATA_DIR, NEWSBOT_MODEL,
NEWSBOT_TELEGRAM_TOKEN, ...) or the matching flags above; see README.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    from bot import commands

    parser = argparse.ArgumentParser(
        prog="newsbot",
        description="Answer questions about the news from a corpus of articles, with quotes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # No abbreviations: the top-level parser would otherwise read ``run --webhook URL``
        # as an ambiguous prefix of the --webhook-secret/--webhook-path/... setting flags.
        allow_abbrev=False,
    )
    parser.add_argument("--data-dir", help="data directory (NEWSBOT_DATA_DIR, default ./data)")
    parser.add_argument("--model", help="embedding model name or path (NEWSBOT_MODEL)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    settings = parser.add_argument_group(
        "settings", "every NEWSBOT_<NAME> variable has a flag --<name> that overrides it"
    )
    for f in fields(Settings):
        if f.name not in ("data_dir", "model"):
            settings.add_argument(
                f"--{f.name.replace('_', '-')}",
                dest=f"setting_{f.name}",
                metavar="VALUE",
                help=f"NEWSBOT_{f.name.upper()}",
            )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``newsbot`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        overrides = {
            f.name: getattr(args, f"setting_{f.name}")
            for f in fields(Settings)
            if f.name not in ("data_dir", "model")
        }
        settings = Settings.from_env(data_dir=args.data_dir, model=args.model, **overrides)
    except SettingsError as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return 2
    if settings.crash_at:  # fault tests: kill -9 at a named step
        from corpus import faults

        faults.arm(settings.crash_at)
    try:
        result = args.handler(settings, args)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        return int(result or 0)
    except KeyboardInterrupt:
        return 130


def console_main() -> None:
    """The console script: :func:`main`, then exit without the interpreter's teardown.

    Tearing down torch and transformers took 2.8 s of a 15 s cold ``newsbot ask``
    (benchmarks/cold_start.py); everything is closed and flushed by then, so skip it.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    console_main()
