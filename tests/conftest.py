"""Shared fixtures. Keep this small: fixtures used by one test file live in that file."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# Tests never download models; set before anything imports huggingface_hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from corpus.store import Store  # noqa: E402

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
