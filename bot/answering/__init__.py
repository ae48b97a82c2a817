"""The answer engine: plain Python, no Telegram types."""
