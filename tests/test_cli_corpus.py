"""The installed ``newsbot`` console script, run for real in a subprocess.

Every ingest here passes ``--no-index``: indexing loads the embedding model and is
tested elsewhere.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

NEWSBOT = Path(sys.executable).parent / "newsbot"
SEED_NAME = "iran-russia-police-2023-06-29.txt"


@pytest.fixture
def newsbot(tmp_data_dir: Path):
    """Run ``newsbot ARGS`` with NEWSBOT_DATA_DIR pointing at a fresh directory."""
    assert NEWSBOT.exists(), f"console script not installed at {NEWSBOT}"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("NEWSBOT_")
    }  # no stray settings from the developer's shell
    env.update(NEWSBOT_DATA_DIR=str(tmp_data_dir), HF_HUB_OFFLINE="1")

    def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(NEWSBOT), *map(str, args)],
            env=env,
            cwd=cwd or tmp_data_dir.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )

    return run


def summary_counts(stdout: str) -> dict[str, int]:
    match = re.search(r"added (\d+), updated (\d+), duplicates (\d+), failed (\d+)", stdout)
    assert match, stdout
    return dict(
        zip(("added", "updated", "duplicates", "failed"), map(int, match.groups()), strict=True)
    )


def test_help_shows_examples(newsbot) -> None:
    result = newsbot("--help")
    assert result.returncode == 0, result.stderr
    assert "examples:" in result.stdout
    for example in ("newsbot ingest corpus/samples", "newsbot stats", "newsbot delete 42"):
        assert example in result.stdout
    for command in ("ingest", "stats", "articles", "delete"):
        assert command in result.stdout
    assert "NEWSBOT_DATA_DIR" in result.stdout


def test_no_command_prints_help_and_fails(newsbot) -> None:
    result = newsbot()
    assert result.returncode == 2
    assert "usage: newsbot" in result.stdout


def test_ingest_twice_then_stats(newsbot, samples_dir: Path, tmp_data_dir: Path) -> None:
    seed = samples_dir / SEED_NAME
    first = newsbot("ingest", seed, "--no-index")
    assert first.returncode == 0, first.stderr
    assert summary_counts(first.stdout) == {"added": 1, "updated": 0, "duplicates": 0, "failed": 0}

    second = newsbot("ingest", seed, "--no-index")
    assert second.returncode == 0, second.stderr
    assert summary_counts(second.stdout) == {"added": 0, "updated": 0, "duplicates": 1, "failed": 0}

    stats = newsbot("stats")
    assert stats.returncode == 0, stats.stderr
    assert re.search(r"^articles: 1$", stats.stdout, re.MULTILINE), stats.stdout
    assert "2023-06-29 to 2023-06-29" in stats.stdout
    assert "IFP Media Wire" in stats.stdout
    # the database is where NEWSBOT_DATA_DIR says, and --no-index built no index
    assert (tmp_data_dir / "newsbot.db").is_file()
    assert not (tmp_data_dir / "index").exists()


def test_data_dir_flag_overrides_the_environment(
    newsbot, samples_dir: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other-data"
    result = newsbot("--data-dir", other, "ingest", samples_dir / SEED_NAME, "--no-index")
    assert result.returncode == 0, result.stderr
    con = sqlite3.connect(other / "newsbot.db")
    try:
        assert con.execute("SELECT COUNT(*) FROM articles").fetchone() == (1,)
    finally:
        con.close()


def test_ingest_a_directory_with_bad_files(newsbot, samples_dir: Path, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(samples_dir / SEED_NAME, inbox / SEED_NAME)
    shutil.copy(samples_dir / "01-armenia-rescue-moscow-2023-05-18.txt", inbox / "01.txt")
    (inbox / "empty.txt").write_bytes(b"")
    (inbox / "binary.md").write_bytes(b"\x00\xff\x00\xff")
    (inbox / "broken.json").write_text("{", encoding="utf-8")
    (inbox / "latin1.txt").write_bytes(b" date 2023-01-01\nCaf\xe9\n\nBody.")

    result = newsbot("ingest", inbox, "--no-index")
    assert result.returncode == 0, "something landed, so the run succeeded"
    assert summary_counts(result.stdout) == {"added": 2, "updated": 0, "duplicates": 0, "failed": 4}
    failed_lines = [line.strip() for line in result.stdout.splitlines() if "failed:" in line]
    assert len(failed_lines) == 4, result.stdout
    expected = {
        "binary.md": "binary file, not text",
        "broken.json": "invalid JSON",
        "empty.txt": "empty file",
        "latin1.txt": "not UTF-8 text",
    }
    for name, reason in expected.items():
        (line,) = [line for line in failed_lines if f"{inbox / name}:" in line]
        assert line.startswith(f"failed: {inbox / name}: {reason}"), line
    assert "Traceback" not in result.stderr


def test_ingest_of_only_bad_files_fails(newsbot, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[", encoding="utf-8")
    result = newsbot("ingest", bad, tmp_path / "missing.txt", "--no-index")
    assert result.returncode == 1
    assert summary_counts(result.stdout)["failed"] == 2
    assert f"failed: {tmp_path / 'missing.txt'}: no such file or directory" in result.stdout


def test_articles_lists_newest_first(newsbot, samples_dir: Path) -> None:
    assert newsbot("ingest", samples_dir, "--no-index").returncode == 0
    result = newsbot("articles", "--limit", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert "2023-08-25" in lines[0] and "Iranian striker" in lines[0]
    assert "2023-08-17" in lines[1]
    ids = [int(line.split()[0]) for line in lines]
    assert ids == [12, 11, 10]
    everything = newsbot("articles").stdout.splitlines()
    assert len(everything) == 13
    assert any("IFP Media Wire" in line for line in everything)


def test_delete(newsbot, samples_dir: Path) -> None:
    assert newsbot("ingest", samples_dir / SEED_NAME, "--no-index").returncode == 0
    (line,) = newsbot("articles").stdout.splitlines()
    article_id = line.split()[0]

    deleted = newsbot("delete", article_id)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"deleted article {article_id}"
    assert newsbot("articles").stdout.strip() == ""
    assert re.search(r"^articles: 0$", newsbot("stats").stdout, re.MULTILINE)

    again = newsbot("delete", article_id)
    assert again.returncode == 1
    assert again.stdout.strip() == f"no article {article_id}"


def test_delete_needs_a_number(newsbot) -> None:
    result = newsbot("delete", "abc")
    assert result.returncode == 2
    assert "invalid int value" in result.stderr


def test_bad_setting_is_named(newsbot, tmp_data_dir: Path) -> None:
    env_result = subprocess.run(
        [str(NEWSBOT), "stats"],
        env={**os.environ, "NEWSBOT_DATA_DIR": str(tmp_data_dir), "NEWSBOT_INDEX_KIND": "nope"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert env_result.returncode == 2
    assert "NEWSBOT_INDEX_KIND" in env_result.stderr
