"""Helpers for tests that run ``python -m taskq`` in real processes: a tasks module written for
the test's namespace, a clean environment, spawning and killing process groups, bounded waits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

# the settings taskq reads from the environment: a test sets the ones it means to
TASKQ_ENV = (
    "TASKQ_URL",
    "REDIS_URL",
    "REDIS_ADDR",
    "REDIS_DB",
    "INTERVAL",
    "JOB_DELAY",
    "JOB_MAX_RETRY",
)

TASKS_HEADER = """\
import os
import signal
import time

from taskq import App

HERE = os.path.dirname(os.path.abspath(__file__))
app = App(namespace={namespace!r})


def record(name, line):
    # one write of one short line with O_APPEND: lines from many processes never interleave
    fd = os.open(os.path.join(HERE, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)
"""


def write_tasks(directory: Path, namespace: str, body: str, module: str = "tasks") -> str:
    """Write ``<module>.py`` (an App in ``namespace`` plus ``body``) and return ``module:app``."""
    text = TASKS_HEADER.format(namespace=namespace) + "\n\n" + textwrap.dedent(body)
    (directory / f"{module}.py").write_text(text)
    return f"{module}:app"


def taskq_env(url: str | None, **extra: str) -> dict[str, str]:
    """The test process's environment without taskq's settings, plus ``TASKQ_URL`` and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in TASKQ_ENV}
    env["PYTHONUNBUFFERED"] = "1"
    if url is not None:
        env["TASKQ_URL"] = url
    env.update(extra)
    return env


def run_taskq(
    args: Sequence[str], cwd: Path, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m taskq ARGS`` to completion (bounded by ``timeout``)."""
    return subprocess.run(
        [sys.executable, "-m", "taskq", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Proc:
    """A ``python -m taskq`` process in its own process group, its stderr going to a file."""

    def __init__(self, args: Sequence[str], cwd: Path, env: dict[str, str], log: Path) -> None:
        self.args = list(args)
        self.log = log
        self._log_file = log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "taskq", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: killpg reaches anything it started
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, signum: int) -> None:
        with suppress(ProcessLookupError):
            os.kill(self.popen.pid, signum)

    def wait(self, timeout: float) -> int:
        """The exit code; fails the test if the process is still running after ``timeout``."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"taskq {' '.join(self.args)} still runs after {timeout}s; log:\n{self.text()}"
            ) from None

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group and reap the process."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        self._log_file.close()

    def text(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (with ``--log-format json``)."""
        found = []
        for line in self.text().splitlines():
            with suppress(ValueError):
                data = json.loads(line)
                if isinstance(data, dict):
                    found.append(data)
        return found


@contextmanager
def processes() -> Iterator[Callable[..., Proc]]:
    """A factory of :class:`Proc`; every process started is killed (group and all) at the end."""
    started: list[Proc] = []

    def spawn(args: Sequence[str], cwd: Path, env: dict[str, str], log: Path) -> Proc:
        proc = Proc(args, cwd, env, log)
        started.append(proc)
        return proc

    try:
        yield spawn
    finally:
        for proc in started:
            proc.kill()


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.02
) -> Any:
    """Poll ``condition`` until it returns something true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def lines(path: Path) -> list[str]:
    """The lines of a file that tasks append to (none if it does not exist yet)."""
    return path.read_text().splitlines() if path.exists() else []
