"""The update fuzzer behind ``benchmarks/fuzz_updates.py`` (the command line) and
``tests/test_fuzz_slice.py`` (a bounded slice in CI), one job a module:

* ``world``: paths, ids, chats, commands, forbidden words, UTF-16 helpers;
* ``server``: the fake Bot API server as the fuzz uses it, closed loopback ports;
* ``texts``: text pools and ``TextFuzz`` (random hostile texts);
* ``builders``: ``Injected`` and ``UpdateBuilder`` (build, check, send, record updates);
* ``messages``: message and command updates (``MessageUpdates``);
* ``callbacks``: callback queries, member changes, unknown types (``CallbackUpdates``);
* ``updates``: ``UpdateFuzzer``, the weighted mix of all of them;
* ``checks``: the message rules, log scan and admin reports after a run;
* ``run``: ``FuzzConfig``, ``FuzzReport``, the bot process, injection, ``run_fuzz``;
* ``report``: ``print_report``.
"""

from __future__ import annotations

from benchmarks.fuzzing.report import print_report
from benchmarks.fuzzing.run import FuzzConfig, FuzzReport, run_fuzz
from benchmarks.fuzzing.world import MAX_UTF16

__all__ = ["MAX_UTF16", "FuzzConfig", "FuzzReport", "print_report", "run_fuzz"]
