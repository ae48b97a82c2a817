"""The real ``newsbot run`` process for end-to-end tests, against a local Bot API server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.fake_bot_api import FakeBotApi


class BotProcess:
    """Start, stop and restart the bot on a data directory; its log goes to ``bot.log``."""

    def __init__(self, api: FakeBotApi, data: Path, **settings: str) -> None:
        self.api = api
        self.data = data
        self.env = {
            **os.environ,
            "NEWSBOT_DATA_DIR": str(data),
            "NEWSBOT_TELEGRAM_TOKEN": api.token,
            "NEWSBOT_TELEGRAM_API_URL": api.base_url.removesuffix("/bot"),
            **{f"NEWSBOT_{name.upper()}": value for name, value in settings.items()},
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data / "bot.log"

    def start(self, *args: str, timeout: float = 60) -> None:
        """Start ``newsbot run ARGS``; wait until it polls for updates (or set its webhook)."""
        polls = len(self.api.calls("getUpdates")) + len(self.api.calls("setWebhook"))
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "newsbot"), "run", *args],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        self.api.wait_for(
            lambda a: len(a.calls("getUpdates")) + len(a.calls("setWebhook")) > polls,
            timeout=timeout,
        )

    def stop(self) -> int | None:
        """Stop the bot as Ctrl-C would (kill it if it hangs); returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the bot's log, for failure messages."""
        return self.log.read_text()[-chars:] if self.log.exists() else ""

    def indexed(self) -> bool:
        """Whether the index on disk was built from the store as it is now (the background
        indexer caught up with the latest write)."""
        from corpus.store import Store

        async def store_version() -> int:
            async with await Store.open(self.data / "newsbot.db") as store:
                return await store.corpus_version()

        try:
            manifest = json.loads((self.data / "index" / "current" / "manifest.json").read_text())
        except (OSError, ValueError):
            return False
        return manifest.get("corpus_version") == asyncio.run(store_version())
