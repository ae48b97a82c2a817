"""``newsbot run --webhook``: Telegram posts updates to the bot's own HTTP server; and the
optional Prometheus ``/metrics`` endpoint counts what the bot did."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import httpx

from tests.bot_process import BotProcess
from tests.fake_bot_api import FakeBotApi


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post_until_accepted(url: str, update: dict, secret: str, timeout: float = 30) -> None:
    """POST an update to the webhook as Telegram would (with the secret token header),
    retrying while the bot's server comes up."""
    deadline = time.monotonic() + timeout
    headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
    while True:
        try:
            response = httpx.post(url, json=update, headers=headers, timeout=5)
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the webhook server never accepted the update"
        time.sleep(0.3)


def test_webhook_mode_answers_and_metrics_count(
    api: FakeBotApi, sample_data_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(sample_data_dir, data, symlinks=True)
    hook_port, metrics_port = free_port(), free_port()
    bot = BotProcess(api, data, metrics_port=str(metrics_port))
    bot.start(
        "--webhook",
        f"http://127.0.0.1:{hook_port}",
        "--listen",
        "127.0.0.1",
        "--port",
        str(hook_port),
    )
    try:
        webhook = api.calls("setWebhook")[-1].params
        # A path of its own (never the public bot id) and a secret token (tests/test_security.py)
        assert webhook["url"].startswith(f"http://127.0.0.1:{hook_port}/")
        assert api.token.split(":")[0] not in webhook["url"] and webhook["secret_token"]
        api.private_message(77, "who signed with Zolotov?")
        update = api.pending_updates()[-1]
        post_until_accepted(webhook["url"], update, webhook["secret_token"])
        reply = api.wait_for_message(77, contains="Radan", timeout=30)
        assert "IFP Media Wire" in reply["text"]
        assert not [c for c in api.calls("getUpdates") if c.time > webhook_time(api)]

        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'newsbot_answers_total{outcome="answered"} 1.0' in metrics
        assert "newsbot_corpus_articles 13.0" in metrics
        assert "newsbot_answer_seconds_count 1.0" in metrics
    finally:
        assert bot.stop() in (0, -2, -9, 130), bot.log_tail()


def webhook_time(api: FakeBotApi) -> float:
    return api.calls("setWebhook")[-1].time
