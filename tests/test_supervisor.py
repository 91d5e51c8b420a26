"""``taskq worker --processes N``: children restarted after ``kill -9``, stopped by one SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.conftest import REDIS_URL

pytestmark = pytest.mark.faults

TASKS = """
from taskq import App
app = App({url!r}, namespace={namespace!r})

@app.task
def touch(path: str) -> None:
    open(path, "a").close()
"""


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def _wait(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_supervisor_restarts_a_killed_child_and_stops_all_on_sigterm(
    tmp_path: Path, namespace: str, redis_client: redis.Redis
) -> None:
    (tmp_path / "sup_tasks.py").write_text(TASKS.format(url=REDIS_URL, namespace=namespace))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [sys.executable, "-m", "taskq", "worker", "sup_tasks:app", "--processes", "2"]
    parent = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: len(_children(parent.pid)) == 2)
        first = _children(parent.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(_children(parent.pid) - {victim}) == 2)
        # the restarted set still runs jobs
        sys.path.insert(0, str(tmp_path))
        import sup_tasks  # type: ignore[import-not-found]

        marker = tmp_path / "ran"
        sup_tasks.touch.delay(str(marker))
        _wait(marker.exists)
        children = _children(parent.pid)
        # both children are up (their heartbeats are in), so both have their signal handlers
        inspector = sup_tasks.app.inspector
        _wait(lambda: children <= {w.pid for w in inspector.workers()})
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(20) == 0
        for pid in children:  # every child is gone, not orphaned
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        log = parent.stderr.read() if parent.stderr else ""
        # the first line says which broker the workers use, as a single worker's does
        assert log.splitlines()[0].endswith(f"supervising 2 worker processes on {REDIS_URL}")
        assert "exited with -9; restarting" in log
        assert log.count("SIGTERM: finishing running jobs") == 2
    finally:
        sys.path.remove(str(tmp_path)) if str(tmp_path) in sys.path else None
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in _children(parent.pid):
            os.kill(pid, signal.SIGKILL)
