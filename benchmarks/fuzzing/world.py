"""The fixed world of the fuzz: paths, the bot's name, the ids of admins, users, groups and
channels, the commands and their weights, the words no user may see, and UTF-16 helpers."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

JSON = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "corpus" / "samples"
SAMPLE_QUESTIONS = ROOT / "tests" / "fixtures" / "sample_questions.jsonl"
NEWSBOT = Path(sys.executable).parent / "newsbot"

MAX_UTF16 = 4096
BOT_USERNAME = "newsbot_test_bot"
ADMIN_IDS = (4242, 4343)
ADMIN_CHAT = -1009990001  # the error handler reports here; tracebacks are allowed there
CANARY_USER = 777_000_001
CANARY_QUESTION = "who signed with Zolotov?"
ANON_ADMIN = {  # Telegram's sender of messages by anonymous group admins
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
TELEGRAM_SERVICE = {"id": 777000, "is_bot": False, "first_name": "Telegram"}  # linked channels
USERS = range(1001, 1401)  # ordinary users (the per-user rate limit applies: 10 a minute)
GROUPS = 120  # groups and supergroups; many, so PTB's 20-a-minute group limit rarely bites
CHANNELS = 60
HOT, HOT_SHARE = 3, 0.4  # 40% of the traffic goes to the first 3 users, groups and channels
FORBIDDEN_WORDS = ("Traceback", "Exception")  # never in a message to a user
FORBIDDEN_RE = re.compile("|".join(FORBIDDEN_WORDS), re.IGNORECASE)
# Update keys python-telegram-bot 22 does not know; Telegram adds types now and then.
UNKNOWN_KINDS = tuple(
    "future_update story_reaction paid_reaction_count topic_update_v2 x_new".split()
)

COMMANDS = tuple(
    "start help about ask follow following unfollow digest reindex ingest stats delete"
    " addfeed feeds removefeed addchannel approvechannel removechannel".split()
)
# /reindex re-embeds the whole corpus: keep it rare, as an admin would.
COMMAND_WEIGHTS = {"ask": 10, "follow": 6, "reindex": 0.15, "start": 1, "help": 1}


def bot_commands() -> tuple[str, ...]:
    """``COMMANDS`` plus any command the bot's menus name that this list does not know yet
    (read from ``bot.telegram.app``), so new commands are fuzzed without editing this file."""
    try:
        from bot.telegram.app import ADMIN_COMMANDS, READER_COMMANDS
    except Exception:  # a tree that does not import is reported by the bot's start
        return COMMANDS
    named = {c.command for c in [*READER_COMMANDS, *ADMIN_COMMANDS]}
    return COMMANDS + tuple(sorted(named - set(COMMANDS)))


def utf16_len(text: str) -> int:
    """UTF-16 code units, also for texts holding lone surrogates (as Telegram's JSON allows)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
