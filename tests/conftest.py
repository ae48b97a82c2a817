"""Shared fixtures. Keep this small: fixtures used by one test file live in that file."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

# Tests never download models; set before anything imports huggingface_hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from corpus.store import Store  # noqa: E402
from tests.fake_bot_api import FakeBotApi  # noqa: E402
from tests.servers.news_site import NewsSite  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tmp_data_dir(tmp_path: Path) -> Path:
    """A fresh, empty data directory."""
    data = tmp_path / "data"
    data.mkdir()
    return data


@pytest.fixture
async def store(tmp_data_dir: Path) -> AsyncIterator[Store]:
    """An opened store on a fresh database file; closed after the test."""
    opened = await Store.open(tmp_data_dir / "newsbot.db")
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def samples_dir() -> Path:
    """The project's own sample corpus (corpus/samples)."""
    return ROOT / "corpus" / "samples"


@pytest.fixture
def fixtures_dir() -> Path:
    """Small input files written for the tests (tests/fixtures)."""
    return ROOT / "tests" / "fixtures"


def run_cli(*args: str, data_dir: Path, env: dict[str, str] | None = None, timeout: float = 300):
    """Run the real ``newsbot`` console script; returns the CompletedProcess."""
    import subprocess
    import sys

    full_env = {**os.environ, "NEWSBOT_DATA_DIR": str(data_dir), **(env or {})}
    script = Path(sys.executable).parent / "newsbot"
    return subprocess.run(
        [str(script), *args], env=full_env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="session")
def sample_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the sample corpus, ingested and indexed with the real model.

    Built once per session; tests that change it must copy it first (``copy_data_dir``).
    """
    data = tmp_path_factory.mktemp("sample-data")
    result = run_cli("ingest", str(ROOT / "corpus" / "samples"), data_dir=data)
    assert result.returncode == 0, result.stderr
    return data


@pytest.fixture
def copy_data_dir(sample_data_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the indexed sample data directory."""
    import shutil

    target = tmp_path / "data-copy"
    shutil.copytree(sample_data_dir, target, symlinks=True)
    return target


@pytest.fixture(scope="module")
def site() -> Iterator[NewsSite]:
    """A local news web site (pages and feeds) for the module's tests."""
    with NewsSite() as news_site:
        yield news_site


@pytest.fixture(scope="module")
def api() -> Iterator[FakeBotApi]:
    """A local Telegram Bot API server for the module's tests."""
    with FakeBotApi() as server:
        yield server
