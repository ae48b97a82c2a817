"""Settings: read once from NEWSBOT_* variables, overridden by flags, validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError
from tests.conftest import run_cli


def test_environment_values_are_typed() -> None:
    settings = Settings.from_env(
        {
            "NEWSBOT_DATA_DIR": "/tmp/x",
            "NEWSBOT_ADMIN_IDS": "12, 34;56",
            "NEWSBOT_URL_ALLOWLIST": "127.0.0.1:8000, localhost",
            "NEWSBOT_LOG_JSON": "yes",
            "NEWSBOT_FETCH_TIMEOUT": "2.5",
            "NEWSBOT_USER_RATE_PER_MINUTE": "3",
        }
    )
    assert settings.data_dir == Path("/tmp/x") and settings.db_path == Path("/tmp/x/newsbot.db")
    assert settings.admin_ids == frozenset({12, 34, 56})
    assert settings.url_allowlist == frozenset({"127.0.0.1:8000", "localhost"})
    assert settings.log_json is True and settings.fetch_timeout == 2.5
    assert settings.user_rate_per_minute == 3


def test_flags_override_the_environment() -> None:
    env = {"NEWSBOT_MODEL": "env-model", "NEWSBOT_INDEX_KIND": "flat"}
    settings = Settings.from_env(env, model="flag-model", index_kind="hnsw", data_dir="d")
    assert (settings.model, settings.index_kind, settings.data_dir) == (
        "flag-model",
        "hnsw",
        Path("d"),
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEWSBOT_ADMIN_IDS": "alice"}, "NEWSBOT_ADMIN_IDS"),
        ({"NEWSBOT_METRICS_PORT": "lots"}, "NEWSBOT_METRICS_PORT"),
        ({"NEWSBOT_EMBED_PRECISION": "fp8"}, "NEWSBOT_EMBED_PRECISION"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_every_setting_has_a_cli_flag(tmp_path: Path) -> None:
    sample = (
        Path(__file__).parent.parent
        / "corpus"
        / "samples"
        / "01-armenia-rescue-moscow-2023-05-18.txt"
    )
    result = run_cli(
        "--max-file-mb", "0.0001", "ingest", str(sample), "--no-index", data_dir=tmp_path
    )
    assert "file too large" in result.stdout
    result = run_cli("--index-kind", "bogus", "stats", data_dir=tmp_path)
    assert result.returncode == 2 and "NEWSBOT_INDEX_KIND must be one of" in result.stderr
    help_text = run_cli("--help", data_dir=tmp_path).stdout
    for flag in ("--telegram-token", "--admin-ids", "--llm-base-url", "--feed-poll-minutes"):
        assert flag in help_text
