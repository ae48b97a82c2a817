"""The Telegram layer: the only place Telegram types appear."""
