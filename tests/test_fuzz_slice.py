"""A bounded slice of the fuzz floor: 300 hostile updates through the real bot process.

The same code as ``benchmarks/fuzz_updates.py`` (which sends 10,000): the fake Bot API
server, ``newsbot run`` with the hash embedder on the sample corpus, a fixed seed. The
checks are the floor of the hardening issue: the process survives and still answers, no
message to a user shows a traceback, and every message the bot sends or edits is valid
Telegram HTML within 4096 UTF-16 units. About 20-30 s on 2 cores.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from benchmarks.fuzz_updates import MAX_UTF16, FuzzConfig, FuzzReport, print_report, run_fuzz

SLICE = FuzzConfig(
    updates=300,
    seed=20240601,
    max_seconds=30.0,  # injection at 60 updates/s takes ~5 s; this only bounds a stall
    drain_seconds=40.0,
    quiet_seconds=3.0,
    rate=60.0,
    start_timeout=90.0,
    canary_timeout=30.0,
    progress=False,
)


@pytest.fixture(scope="module")
def report() -> Iterator[FuzzReport]:
    """One fuzz run shared by the checks below (the bot starts once)."""
    yield run_fuzz(SLICE)


def text_of(report: FuzzReport) -> str:
    """The printed report, for assertion messages."""
    out = io.StringIO()
    print_report(report, out)
    return out.getvalue()


def test_every_update_was_sent_and_handled(report: FuzzReport) -> None:
    # The generator only sends updates python-telegram-bot can parse (as Telegram would);
    # if a PTB upgrade makes a shape invalid, fix the generator rather than lose coverage.
    assert report.injected.rejected_by_ptb == 0, text_of(report)
    assert report.injected.count == SLICE.updates, text_of(report)
    assert report.drained, text_of(report)


def test_the_bot_survives_and_still_answers(report: FuzzReport) -> None:
    assert report.alive, text_of(report) + report.log_tail
    assert report.canary_reply, text_of(report) + report.log_tail


def test_no_traceback_reaches_a_user(report: FuzzReport) -> None:
    assert report.tracebacks_to_users == [], text_of(report)


def test_every_reply_is_valid_telegram_html_within_the_limit(report: FuzzReport) -> None:
    assert report.sends > 50, text_of(report)  # the slice really made the bot talk
    broken = [(p.rule, p.detail, p.text, p.update) for p in report.send_problems]
    assert broken == [], text_of(report)
    too_long = [p for p in report.send_problems if str(MAX_UTF16) in p.rule]
    assert too_long == []


def test_no_update_ends_in_the_error_handler(report: FuzzReport) -> None:
    # Every finding of the full run has a regression test in tests/test_fuzz_findings.py.
    assert report.sorry_replies == 0, text_of(report)
    assert report.error_lines == 0, text_of(report) + report.log_tail
