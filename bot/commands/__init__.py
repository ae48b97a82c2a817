"""CLI sub-commands, one module per area; ``register`` adds them all to the parser."""

from __future__ import annotations

import argparse

from bot.commands import answer_cmds, corpus_cmds, feed_cmds, run_cmd, search_cmds


def register(sub: argparse._SubParsersAction) -> None:
    """Add every sub-command to the parser."""
    corpus_cmds.register(sub)
    search_cmds.register(sub)
    answer_cmds.register(sub)
    feed_cmds.register(sub)
    run_cmd.register(sub)
