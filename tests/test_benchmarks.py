"""``python -m benchmarks --quick`` runs every scenario to a figure, and says when it cannot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL, free_port, redis_or_skip

ROOT = Path(__file__).resolve().parent.parent

# the first words of each row a Redis run prints (figures are not checked: speed is measured
# by the benchmark itself, never asserted in a test)
ROWS = [
    "enqueue 1 by 1",
    "enqueue bulk",
    "worker start-up",
    "no-op jobs/s x300, c=1,",
    "no-op jobs/s x300, c=10 (default), JSON",
    "no-op jobs/s x300, c=50",
    "no-op jobs/s x300, c=10 (default), --log-level warning",
    "no-op jobs/s x300, --processes 2",
    "no-op jobs/s x300, async def",
    "CPU-bound ~1ms jobs/s, 1 process",
    "CPU-bound ~1ms jobs/s, --processes 2",
    "lateness p99, idle worker",
    "lateness p99, under 5,000",
    "bytes/waiting job",
    "bytes/finished no-op job",
    "recovery after kill -9",
    "Redis CPU/job: enqueue",
    "Redis CPU/job: worker",
]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "benchmarks", "--quick", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.redis
def test_quick_run_on_redis_prints_a_figure_for_every_scenario() -> None:
    redis_or_skip()
    done = _run("--url", REDIS_URL)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "skipped" not in done.stdout, done.stdout
    for row in ROWS:
        found = [line for line in lines if line.startswith(row)]
        assert found, f"no row {row!r} in:\n{done.stdout}"
        # the figure follows the scenario name: a number with its unit
        assert re.search(r"\s\d[\d,.]*\s(jobs/s|ms|B/job|s|µs)\s", found[0]), found[0]


def test_a_broker_that_cannot_be_opened_exits_1_with_a_reason() -> None:
    done = _run("--url", f"redis://127.0.0.1:{free_port()}/0", "--only", "enqueue")
    assert done.returncode == 1
    assert "skipped: broker cannot be opened" in done.stdout


@pytest.mark.redis
def test_two_brokers_are_measured_and_put_side_by_side(tmp_path: Path) -> None:
    redis_or_skip()
    sqlite = f"sqlite:///{tmp_path / 'bench.db'}"
    done = _run("--url", REDIS_URL, "--url", sqlite, "--only", "enqueue")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"on {REDIS_URL} (redis)" in done.stdout and f"on {sqlite} (sqlite)" in done.stdout
    side = done.stdout.split("side by side", 1)[1].splitlines()
    assert side[1].split() == ["scenario", "redis", "sqlite"]
    for row in ("enqueue 1 by 1", "enqueue bulk"):
        [line] = [line for line in side if line.startswith(row)]
        assert len(re.findall(r"\d[\d,.]* jobs/s", line)) == 2, line
