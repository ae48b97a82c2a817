"""Settings, read once from the environment (``NEWSBOT_*``) and CLI flags into one frozen object.

Nothing else in newsbot reads the environment: the composition root passes this down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# What Telegram accepts as a webhook secret_token; the path is used literally in a URL
# (and by PTB's web server in a regular expression), so it takes no other characters.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
_WEBHOOK_PATH = re.compile(r"[A-Za-z0-9_/-]{1,256}")


class SettingsError(ValueError):
    """A setting has a value newsbot cannot use; the message names it."""


def _ids(value: str) -> frozenset[int]:
    try:
        return frozenset(int(v) for v in value.replace(";", ",").split(",") if v.strip())
    except ValueError:
        raise SettingsError(
            f"NEWSBOT_ADMIN_IDS must be comma-separated numbers, got {value!r}"
        ) from None


def _words(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


@dataclass(frozen=True)
class Settings:
    """Everything configurable. Field ``x`` comes from ``NEWSBOT_X``."""

    data_dir: Path = Path("data")
    model: str = DEFAULT_MODEL
    embed_precision: str = "auto"  # auto (measured) | fp32 | bf16
    index_kind: str = "auto"  # auto | flat | hnsw
    # Exact search answers within 20 ms (query encoding included) up to about 50k chunks
    # on 2 cores; HNSW above (recall@10 0.99 at 100k). See benchmarks/search_speed.py.
    hnsw_threshold: int = 50_000
    max_file_mb: float = 20.0
    # the span reader: the project's trained weights (empty: the shipped ones; "off": none,
    # answers are then the evidence quotes alone) and its precision
    reader_weights: str = ""
    reader_precision: str = "auto"  # auto (measured) | fp32 | bf16
    # optional generative answers (an OpenAI-compatible endpoint)
    llm_base_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout: float = 20.0
    # fetching
    fetch_timeout: float = 15.0
    fetch_max_mb: float = 5.0
    url_allowlist: frozenset[str] = field(default_factory=frozenset)
    # telegram
    telegram_token: str = ""
    telegram_api_url: str = ""
    admin_ids: frozenset[int] = field(default_factory=frozenset)
    admin_chat_id: int = 0
    user_rate_per_minute: int = 10
    metrics_port: int = 0
    feed_poll_minutes: int = 30
    feed_check_seconds: float = 60.0  # how often the bot looks for due feeds
    # webhook mode (``newsbot run --webhook URL``): Telegram sends ``webhook_secret`` in the
    # X-Telegram-Bot-Api-Secret-Token header of every request and anything else is refused
    # (empty: a new random secret at each start, which registers the webhook anew anyway);
    # ``webhook_path`` is the URL path served (empty: a random one at each start: never the
    # bot id, which is public); the server listens on loopback unless told otherwise (put a
    # TLS-terminating proxy in front).
    webhook_secret: str = field(default="", repr=False)
    webhook_path: str = ""
    webhook_listen: str = "127.0.0.1"
    # Flood gate, before any handler: updates that would make the bot write (commands,
    # questions, mentions, buttons) are counted per group or channel and per sender; the
    # excess is dropped unanswered. Per chat it stays under Telegram's 20 messages a minute
    # per group, so no handler waits long in the Bot API rate limiter holding an update slot.
    chat_rate_per_minute: int = 10
    sender_rate_per_minute: int = 20
    log_json: bool = False
    # fault tests only: kill -9 this process at a named step (see corpus/faults.py)
    crash_at: str = ""

    @property
    def db_path(self) -> Path:
        """The SQLite database, the corpus' source of truth."""
        return self.data_dir / "newsbot.db"

    @property
    def index_dir(self) -> Path:
        """The derived search index directory (rebuildable from the database)."""
        return self.data_dir / "index"

    @property
    def cache_dir(self) -> Path:
        """Measured machine-specific choices (precision); safe to delete."""
        return self.data_dir / "cache"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``NEWSBOT_*`` variables, then apply ``overrides`` (CLI flags; None = unset)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"NEWSBOT_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, f.type, raw)
        types = {f.name: f.type for f in fields(cls)}
        for name, value in overrides.items():
            if value is not None:
                is_text = isinstance(value, str) and str(types[name]) != "str"
                values[name] = _convert(name, types[name], value) if is_text else value
        settings = cls(**values)
        settings.validate()
        return settings

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def validate(self) -> None:
        """Reject values that cannot work, naming the variable."""
        choices = {
            "embed_precision": ("auto", "fp32", "bf16"),
            "reader_precision": ("auto", "fp32", "bf16"),
            "index_kind": ("auto", "flat", "hnsw"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise SettingsError(f"NEWSBOT_{name.upper()} must be one of {', '.join(allowed)}")
        if self.webhook_secret and not _WEBHOOK_SECRET.fullmatch(self.webhook_secret):
            raise SettingsError(
                "NEWSBOT_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
            )
        if self.webhook_path and not _WEBHOOK_PATH.fullmatch(self.webhook_path):
            raise SettingsError(
                "NEWSBOT_WEBHOOK_PATH must be 1-256 characters of A-Z, a-z, 0-9, _, - and /"
            )


def _convert(name: str, type_name: Any, raw: str) -> Any:
    type_name = str(type_name)
    try:
        if name == "admin_ids":
            return _ids(raw)
        if name == "url_allowlist":
            return _words(raw)
        if type_name == "Path":
            return Path(raw)
        if type_name == "bool":
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
    except ValueError:
        raise SettingsError(f"NEWSBOT_{name.upper()} has an invalid value: {raw!r}") from None
    return raw
