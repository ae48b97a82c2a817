"""``newsbot run``: the Telegram bot, by long polling or webhook."""

from __future__ import annotations

import argparse
import logging
import secrets
import sys
from dataclasses import dataclass, field

from bot.logging_setup import configure_logging
from bot.settings import Settings

# Every kind of update a handler reads. ``chat_member`` (sent only where the bot is an
# admin) tells the group-admin cache that a group's admins changed.
ALLOWED_UPDATES = [
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "callback_query",
    "my_chat_member",
    "chat_member",
]


@dataclass(frozen=True)
class Webhook:
    """Where the bot's web server listens and what it registers with Telegram."""

    listen: str
    port: int
    url_path: str  # the path served, without a leading slash
    url: str  # the public URL Telegram posts to
    secret: str = field(repr=False)  # expected in X-Telegram-Bot-Api-Secret-Token


def webhook_config(
    settings: Settings, public_url: str, port: int, listen: str | None = None
) -> Webhook:
    """The webhook to serve: the configured path and secret, or fresh random ones.

    Random ones are safe to change at every start because setWebhook is called at every
    start; a forged request then needs the secret, which only Telegram is told. The path
    is never derived from the token: the bot id (the token's prefix) is public.
    """
    path = settings.webhook_path.strip("/") or secrets.token_urlsafe(24)
    secret = settings.webhook_secret or secrets.token_urlsafe(48)  # 64 chars, A-Za-z0-9_-
    return Webhook(
        listen=listen or settings.webhook_listen,
        port=port,
        url_path=path,
        url=f"{public_url.rstrip('/')}/{path}",
        secret=secret,
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the run command."""
    p = sub.add_parser(
        "run",
        help="run the Telegram bot (needs NEWSBOT_TELEGRAM_TOKEN)",
        description=(
            "Long polling by default. With --webhook the bot serves its own HTTP server "
            "(behind a TLS proxy) and registers URL/PATH with a secret token: "
            "newsbot run --webhook https://bot.example.org --port 8443"
        ),
    )
    p.add_argument("--webhook", metavar="URL", help="public HTTPS URL Telegram posts updates to")
    p.add_argument(
        "--listen",
        default=None,
        help="webhook listen address (NEWSBOT_WEBHOOK_LISTEN, default 127.0.0.1)",
    )
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
    if args.webhook:
        hook = webhook_config(settings, args.webhook, args.port, args.listen)
        # PTB registers the secret with setWebhook and answers 403 to any request
        # without it, before the update reaches a handler.
        application.run_webhook(
            listen=hook.listen,
            port=hook.port,
            url_path=hook.url_path,
            webhook_url=hook.url,
            secret_token=hook.secret,
            allowed_updates=ALLOWED_UPDATES,
        )
    else:
        application.run_polling(allowed_updates=ALLOWED_UPDATES)
    return 0
