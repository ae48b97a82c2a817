"""newsbot's application layer: settings, answering, the CLI and the Telegram bot."""
