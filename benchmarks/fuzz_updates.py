"""Fuzz the real bot process with hostile Telegram updates and check that it holds.

The floor of the hardening issue: N fuzzed updates (default 10,000) through the real
``newsbot run`` process: 0 crashes, 0 tracebacks to users, every reply valid Telegram HTML
within 4096 UTF-16 units.

What runs: the fake Bot API server (``tests/fake_bot_api.py``) in this process on 127.0.0.1,
and the bot (``tests/bot_process.py``) on a fresh temporary data directory holding the sample
corpus (``corpus/samples``, ingested with ``newsbot ingest``). The bot uses the hash embedder
(``NEWSBOT_MODEL=hash``) and no span reader (``NEWSBOT_READER_WEIGHTS=off``: the shipped reader
needs the MiniLM base model and torch, ~5 s to start and ~60 ms a question, and the reader
only decides whether a bold short answer heads the quotes; rendering, splitting and every
handler are the same). Two admin ids and an admin chat are set, so admin commands and the
error handler's admin report are exercised too.

What is sent, from a seeded RNG (``--seed``; the choices repeat exactly, the bot messages
that buttons are pressed on depend on the bot's replies): private, group, supergroup and
channel messages; every bot command with random arguments (``/addfeed`` and ``/ingest`` URLs
point only at closed ports of 127.0.0.1, which are allow-listed so fetches really try);
questions from the sample questions; random unicode (emoji, RTL and bidi controls,
combining marks, NUL, U+2028, noncharacters, lone surrogates as JSON allows them); HTML and
Markdown debris; runs that make naive regexes backtrack; texts up to 100 KB; entities with
wrong offsets and unknown types; unknown fields; edited messages and channel posts; callback
queries with forged data (random strings, ``more:`` with random keys, other chats' keys,
inaccessible and inline messages); ``my_chat_member``/``chat_member`` changes; update types
the bot did not ask for and types Telegram might add; from users, bot admins, group admins,
anonymous admins (``sender_chat``) and linked channels. Every raw update is first parsed with
python-telegram-bot's ``Update.de_json`` (an update Telegram could not send would stall any
bot's polling loop, which is not what this measures).

Pacing: at most ``--rate`` updates a second and at most ``--window`` updates waiting at the
server; injection stops after ``--max-seconds``. Then the script waits (at most
``--drain-seconds``) until the bot has fetched every update and made no request for
``--quiet-seconds``, asks a canary question, stops the bot and checks:

* the process was alive at the end and answered the canary;
* no message to a user (admin chat excepted) contains "Traceback" or "Exception";
* every ``sendMessage``/``editMessageText`` the bot made parses as Telegram HTML (per
  ``tests/fake_bot_api_html.py``), is not empty and is at most 4096 UTF-16 units;
* findings, not failures: 4xx answers the server gave the bot, ERROR/CRITICAL lines in the
  bot log (grouped, with the update that caused them when the admin report names it),
  reply latency, and the longest gap between the bot's requests while it had work.

All traffic stays on 127.0.0.1; every wait is bounded; the bot is stopped at the end
(SIGINT, then kill) and the temporary data directory removed (``--keep`` keeps it).

    .venv/bin/python benchmarks/fuzz_updates.py [--updates 10000] [--seed 1] [--max-seconds 1200]

Exit status 0 when every check passes, 1 otherwise. ``tests/test_fuzz_slice.py`` runs a
bounded slice of the same code in CI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The fuzzer lives in ``benchmarks/fuzzing`` (see its ``__init__``); this is the command line.
from benchmarks.fuzzing import (  # noqa: E402
    MAX_UTF16,
    FuzzConfig,
    FuzzReport,
    print_report,
    run_fuzz,
)

__all__ = [
    "MAX_UTF16",
    "FuzzConfig",
    "FuzzReport",
    "build_parser",
    "main",
    "print_report",
    "run_fuzz",
]


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags (every one has a default)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = FuzzConfig()
    parser.add_argument("--updates", type=int, default=defaults.updates, help="how many (10000)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="RNG seed (1)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=defaults.max_seconds,
        help="stop injecting after this long (1200)",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=defaults.drain_seconds,
        help="then wait at most this long for the bot to finish (300)",
    )
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=defaults.quiet_seconds,
        help="finished = no bot request for this long (8)",
    )
    parser.add_argument(
        "--rate", type=float, default=defaults.rate, help="at most this many updates a second (30)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=defaults.window,
        help="at most this many updates waiting at the server (200)",
    )
    parser.add_argument("--keep", type=Path, help="use (and keep) this data directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the fuzz; exit 1 if a check failed."""
    args = build_parser().parse_args(argv)
    cfg = FuzzConfig(
        updates=args.updates,
        seed=args.seed,
        max_seconds=args.max_seconds,
        drain_seconds=args.drain_seconds,
        quiet_seconds=args.quiet_seconds,
        rate=args.rate,
        window=args.window,
        keep=args.keep,
    )
    report = run_fuzz(cfg)
    print_report(report)
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
