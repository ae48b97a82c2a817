"""Packaging agrees with itself: Dockerfile, pyproject, scripts, README and CI.

These read the files as text (no Docker daemon needed); one test builds the wheel.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from bot.settings import DEFAULT_MODEL, Settings

ROOT = Path(__file__).resolve().parent.parent
TORCH_PIN = "2.13.0"


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    return instructions


@pytest.fixture(scope="module")
def docker() -> list[tuple[str, str]]:
    assert (ROOT / "Dockerfile").is_file(), "Dockerfile is missing"
    return dockerfile_instructions()


def args_of(docker: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in docker if kw == keyword]


def index_of(docker: list[tuple[str, str]], keyword: str, pattern: str) -> int:
    for i, (kw, args) in enumerate(docker):
        if kw == keyword and re.search(pattern, args):
            return i
    raise AssertionError(f"no {keyword} matching {pattern!r} in the Dockerfile")


def env_of(docker: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in args_of(docker, "ENV"):
        for token in shlex.split(args):
            key, sep, value = token.partition("=")
            assert sep, f"use ENV KEY=VALUE, not the legacy form: {args!r}"
            env[key] = value
    return env


# -- Dockerfile ---------------------------------------------------------------------------------


def test_base_image_python_matches_requires_python(docker, pyproject) -> None:
    froms = args_of(docker, "FROM")
    assert len(froms) >= 1
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim", froms[-1].split()[0])
    assert match, f"expected FROM python:X.Y-slim, got {froms[-1]!r}"
    image_python = Version(f"{match[1]}.{match[2]}")
    spec = SpecifierSet(pyproject["project"]["requires-python"])
    assert image_python in spec
    lower = [s.version for s in spec if s.operator in (">=", "~=", "==")]
    assert lower and Version(lower[0]) == image_python, "the image uses the oldest supported Python"
    assert f"py{match[1]}{match[2]}" == pyproject["tool"]["ruff"]["target-version"]
    assert f"{match[1]}.{match[2]}" == pyproject["tool"]["mypy"]["python_version"]


def test_entrypoint_is_the_console_script(docker, pyproject) -> None:
    scripts = pyproject["project"]["scripts"]
    (entrypoint,) = args_of(docker, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["newsbot"], "exec form, so signals reach newsbot"
    assert scripts["newsbot"] == "bot.cli:console_main"
    (cmd,) = args_of(docker, "CMD")
    assert json.loads(cmd) == ["run"]


def test_runs_as_a_non_root_user(docker) -> None:
    users = args_of(docker, "USER")
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    created = index_of(docker, "RUN", rf"(useradd|adduser)\b.*\b{re.escape(user)}\b")
    assert created < index_of(docker, "USER", re.escape(users[-1]))
    assert index_of(docker, "USER", ".") > index_of(docker, "RUN", r"pip install \.")


def test_data_dir_is_a_volume_owned_by_the_user(docker) -> None:
    env = env_of(docker)
    data_dir = env.get("NEWSBOT_DATA_DIR")
    assert data_dir, "NEWSBOT_DATA_DIR must be set"
    assert "data_dir" in {f for f in Settings.__dataclass_fields__}
    volumes: list[str] = []
    for args in args_of(docker, "VOLUME"):
        volumes += json.loads(args) if args.startswith("[") else args.split()
    assert data_dir in volumes
    user = args_of(docker, "USER")[-1].split(":")[0]
    assert index_of(docker, "RUN", rf"chown\b.*\b{re.escape(user)}\b.*{re.escape(data_dir)}")
    assert env.get("HF_HUB_OFFLINE") == "1"


def test_torch_cpu_is_installed_before_the_package(docker, pyproject) -> None:
    torch_at = index_of(docker, "RUN", rf"pip install .*torch=={re.escape(TORCH_PIN)}")
    torch_run = docker[torch_at][1]
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_run
    package_at = index_of(docker, "RUN", r"pip install \.(\s|$)")
    assert torch_at < package_at
    assert index_of(docker, "COPY", ".") < package_at
    # the pin satisfies the package's own requirement, so pip keeps the CPU wheel
    (torch_req,) = [
        Requirement(r) for r in pyproject["project"]["dependencies"] if r.startswith("torch")
    ]
    assert Version(TORCH_PIN) in torch_req.specifier
    # and it is the pin the local setup uses
    assert f"torch=={TORCH_PIN}" in (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")


def test_the_model_is_checked_offline_at_build_time(docker) -> None:
    check_at = index_of(docker, "RUN", r"load_embedder\(")
    check = docker[check_at][1]
    assert "HF_HUB_OFFLINE=1" in check
    assert f"load_embedder('{DEFAULT_MODEL}', 'fp32')" in check
    assert check_at > index_of(docker, "RUN", r"pip install \.(\s|$)")


def test_copy_sources_exist(docker) -> None:
    for args in args_of(docker, "COPY"):
        parts = [p for p in args.split() if not p.startswith("--")]
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"COPY source {source!r} does not exist"


def test_dockerignore(docker) -> None:
    path = ROOT / ".dockerignore"
    assert path.is_file()
    patterns = {
        line.strip().rstrip("/")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".venv", "data", ".git"):
        assert needed in patterns, f".dockerignore must exclude {needed}"
    assert patterns & {"__pycache__", "**/__pycache__"}
    assert any(p.startswith("benchmarks/") for p in patterns)
    # nothing the build needs is excluded
    for kept in ("pyproject.toml", "README.md", "bot", "corpus", "embeddings", "corpus/samples"):
        assert kept not in patterns


# -- pyproject --------------------------------------------------------------------------------


def test_every_package_is_listed(pyproject) -> None:
    """A package left out of [tool.setuptools] packages is missing from `pip install .`
    (the Docker image) even though the editable dev install hides it."""
    listed = set(pyproject["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("bot", "corpus", "embeddings")
        for init in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found - listed == set(), "packages missing from pyproject"
    data_only = set(pyproject["tool"]["setuptools"].get("package-data", {}))
    assert listed - found - data_only == set(), "pyproject lists packages that do not exist"


def test_the_wheel_holds_the_cli_and_the_samples(tmp_path: Path, pyproject) -> None:
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("bot", "corpus", "embeddings"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            ".",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(tmp_path / "dist"),
        ],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("newsbot-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "newsbot = bot.cli:console_main" in zf.read(entry_points).decode()
    for needed in (
        "bot/cli.py",
        "bot/commands/__init__.py",
        "bot/commands/corpus_cmds.py",
        "corpus/store.py",
        "corpus/readers/seed.py",
        "embeddings/embedder.py",
        "corpus/samples/iran-russia-police-2023-06-29.txt",
    ):
        assert needed in names, f"{needed} is not in the wheel"


# -- README, scripts and CI ------------------------------------------------------------------


def test_readme_commands_exist(pyproject) -> None:
    readme = ROOT / pyproject["project"]["readme"]
    assert readme.is_file(), f"{readme.name} (pyproject's readme) is missing"
    text = readme.read_text(encoding="utf-8")
    commands = re.findall(r"\bbash (scripts/[\w.-]+\.sh)\b", text)
    assert "scripts/demo.sh" in commands
    assert "scripts/test.sh" in commands
    for command in commands:
        assert (ROOT / command).is_file(), f"README runs {command}, which does not exist"


@pytest.mark.parametrize("name", ["demo.sh", "test.sh", "setup.sh"])
def test_scripts_are_strict_bash(name: str) -> None:
    path = ROOT / "scripts" / name
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    assert os.access(path, os.X_OK)
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_test_script_runs_pytest_offline() -> None:
    text = (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8")
    assert "scripts/setup.sh" in text
    assert "-m pytest" in text
    assert "HF_HUB_OFFLINE=1" in text


def test_ci_runs_the_test_script() -> None:
    path = ROOT / ".ci" / "run"
    text = path.read_text(encoding="utf-8")
    assert os.access(path, os.X_OK)
    assert re.search(r"^\s*bash scripts/test\.sh\b", text, re.MULTILINE)
    assert "set -euo pipefail" in text
