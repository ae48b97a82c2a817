"""``newsbot run``: the Telegram bot, by long polling or webhook."""

from __future__ import annotations

import argparse
import logging
import sys

from bot.logging_setup import configure_logging
from bot.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the run command."""
    p = sub.add_parser("run", help="run the Telegram bot (needs NEWSBOT_TELEGRAM_TOKEN)")
    p.add_argument("--webhook", metavar="URL", help="public HTTPS URL Telegram posts updates to")
    p.add_argument("--listen", default="0.0.0.0", help="webhook listen address")
    p.add_argument("--port", type=int, default=8443, help="webhook port")
    p.add_argument("--token", help="bot token (NEWSBOT_TELEGRAM_TOKEN)")
    p.add_argument("--api-url", help="Bot API base URL (NEWSBOT_TELEGRAM_API_URL)")
    p.set_defaults(handler=cmd_run)


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Start the bot; blocks until stopped (Ctrl-C or SIGTERM)."""
    settings = settings.with_(
        telegram_token=args.token or settings.telegram_token,
        telegram_api_url=args.api_url or settings.telegram_api_url,
    )
    if not settings.telegram_token:
        print(
            "newsbot run: set NEWSBOT_TELEGRAM_TOKEN (from @BotFather) or pass --token",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_json, logging.INFO)
    from bot.telegram.app import build_application  # imports PTB only when running the bot

    application = build_application(settings)
    updates = [
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "callback_query",
        "my_chat_member",
    ]
    if args.webhook:
        application.run_webhook(
            listen=args.listen,
            port=args.port,
            url_path=settings.telegram_token.split(":")[0],
            webhook_url=f"{args.webhook.rstrip('/')}/{settings.telegram_token.split(':')[0]}",
            allowed_updates=updates,
        )
    else:
        application.run_polling(allowed_updates=updates)
    return 0
