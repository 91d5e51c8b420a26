"""The README's promises: its commands are the ones CI runs, and its main job really runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    head = text.split("## ", 1)[0]
    return [line.strip() for line in head.splitlines() if line.startswith("    ")]


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one() -> None:
    main_job, tests = _readme_commands()
    assert "examples/hello.py" in main_job
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.sub(r" -q\b", "", tests) in re.sub(r" -q\b", "", ci)


def test_the_main_job_runs_on_the_embedded_default(tmp_path: Path) -> None:
    """examples/hello.py with no broker configured: on SQLite in the working directory."""
    env = {k: v for k, v in os.environ.items() if k not in ("TASKQ_URL", "REDIS_URL", "REDIS_ADDR")}
    shutil.copy(ROOT / "examples" / "hello.py", tmp_path / "hello.py")
    done = subprocess.run(
        [sys.executable, "hello.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "sqlite" in done.stderr.splitlines()[0]
    assert (tmp_path / "taskq.db").exists()
    assert done.stdout.count("processed") == 4
    assert "dead after its retries: RuntimeError: the payload says fail" in done.stdout
    executed = re.findall(r"✅ executed process \S+", done.stderr)
    assert len(executed) == 4
    assert len(re.findall(r"🔄 retrying", done.stderr)) == 3
    assert "❌ exhausted" in done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy"],  # files and --strict come from pyproject.toml
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_lint_and_types_are_clean(command: list[str]) -> None:
    tool = Path(sys.executable).with_name(command[0])
    if not tool.exists():
        if IN_CI:  # CI installs the dev extras: a missing linter must not pass as a skip
            pytest.fail(f"CI=true but {command[0]} is not installed (pip install -e '.[dev]')")
        pytest.skip(f"{command[0]} is not installed (pip install -e '.[dev]')")
    done = subprocess.run(
        [str(tool), *command[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
