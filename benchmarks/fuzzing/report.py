"""The printed report: the checks as a table, then the findings with reproductions."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from benchmarks.fuzzing.checks import trim
from benchmarks.fuzzing.run import FuzzReport
from benchmarks.fuzzing.world import MAX_UTF16


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round((len(ordered) - 1) * p / 100)))]


def print_report(report: FuzzReport, out: Any = sys.stdout) -> None:
    """The checks as a table, then the findings with their reproductions."""
    inj, cfg = report.injected, report.config

    def row(name: str, value: Any, ok: bool | None = None) -> str:
        mark = "" if ok is None else ("ok" if ok else "FAIL")
        return f"  {name:<52} {value!s:>14}  {mark}"

    rate = inj.count / report.total_seconds if report.total_seconds else 0.0
    lat = report.latencies
    p50, p99 = _percentile(lat, 50), _percentile(lat, 99)
    problems = Counter(p.rule for p in report.send_problems)
    lines = [
        f"fuzz_updates: seed {cfg.seed}, {inj.count} updates (asked {cfg.updates})",
        f"cpu: {report.cpu}",
        "",
        row("check", "value", None).replace("  ", "  ", 1),
        row("updates injected", inj.count),
        row("process alive at the end", "yes" if report.alive else "no", report.alive),
        row(
            "canary question answered",
            f"{report.canary_seconds:.2f} s" if report.canary_seconds is not None else "no",
            report.canary_reply is not None,
        ),
        row(
            "all updates handled (offset caught up, quiet)",
            "yes" if report.drained else "no",
            report.drained,
        ),
        row(
            "messages to users with Traceback/Exception",
            len(report.tracebacks_to_users),
            not report.tracebacks_to_users,
        ),
        row("sendMessage + editMessageText checked", report.sends),
        row(
            "  invalid Telegram HTML",
            problems.get("invalid Telegram HTML", 0),
            not problems.get("invalid Telegram HTML"),
        ),
        row(
            f"  longer than {MAX_UTF16} UTF-16 units",
            problems.get(f"longer than {MAX_UTF16} UTF-16 units", 0),
            not problems.get(f"longer than {MAX_UTF16} UTF-16 units"),
        ),
        row("  empty text", problems.get("empty text", 0), not problems.get("empty text")),
        row("4xx answers the server gave the bot", sum(report.status_4xx.values())),
        row("ERROR/CRITICAL lines in the bot log", report.error_lines),
        row("'something went wrong' replies to users", report.sorry_replies),
        row("callback answers over 200 characters", report.long_callback_answers),
        row("longest message the bot sent (UTF-16 units)", report.longest_reply[0]),
        row("updates/s (injection to drained)", f"{rate:.1f}"),
        row("total time, s (injection + drain)", f"{report.total_seconds:.1f}"),
        row("injection time, s", f"{report.inject_seconds:.1f}"),
        row(
            "reply latency p50 / p99, s",
            f"{p50:.2f} / {p99:.2f}" if p50 is not None and p99 is not None else "-",
        ),
        row("longest gap between bot requests, s", f"{report.longest_gap[0]:.2f}"),
        row("bot exit code on SIGINT", report.exit_code),
        "",
        "updates by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(inj.kinds.items())),
        "bot requests: " + ", ".join(f"{k} {v}" for k, v in report.calls_by_method.most_common()),
    ]
    if inj.rejected_by_ptb or inj.control_errors:
        lines.append(
            f"generator: {inj.rejected_by_ptb} updates PTB could not parse were not sent; "
            f"control calls refused: {dict(inj.control_errors)}"
        )
    if report.slowest[1]:
        lines.append(f"slowest reply {report.slowest[0]:.1f} s to: {trim(report.slowest[1], 400)}")
    if report.longest_gap[0] > 2:
        lines.append(f"longest gap started at {report.longest_gap[1]} UTC")
    failures = report.failures()
    lines += ["", "FAILED: " + "; ".join(failures) if failures else "PASSED: every check holds"]
    if report.send_problems or report.tracebacks_to_users:
        lines.append("\nmessages that break the rules (first 3 of each rule):")
        shown: Counter = Counter()
        for p in report.tracebacks_to_users + report.send_problems:
            shown[p.rule] += 1
            if shown[p.rule] <= 3:
                lines.append(f"- {p.rule} ({p.method} to {p.chat_id}): {p.detail}")
                lines.append(f"    text: {p.text}")
                if p.update:
                    lines.append(f"    answering: {trim(p.update, 600)}")
    if report.status_4xx:
        lines.append("\n4xx answers (method, status, description: count):")
        for (method, status, desc), n in report.status_4xx.most_common(12):
            lines.append(f"  {method} {status} {desc}: {n}")
    if report.log_findings:
        lines.append("\nERROR/CRITICAL log records (grouped):")
        for f in report.log_findings[:15]:
            lines.append(f"  {f.count:>5} x {f.level} {f.message} | {f.exception}")
            if f.where:
                lines.append(f"          at {f.where}")
    if report.admin_reports:
        lines.append("\nerror handler reports in the admin chat (exception: count, an update):")
        for exc, n, where in report.admin_reports[:15]:
            lines.append(f"  {n:>5} x {exc}\n        update: {trim(where, 500)}")
    if report.warnings:
        lines.append("\nWARNING log records (top 8):")
        for message, n in report.warnings.most_common(8):
            lines.append(f"  {n:>5} x {message}")
    print("\n".join(lines), file=out, flush=True)
