"""Worker subprocesses: ``python -m taskq worker benchmarks.tasks:app``, logging to a file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import ROOT

APP_REF = "benchmarks.tasks:app"


class WorkerProcess:
    """One ``taskq worker`` process whose stdout and stderr (its logs) go to ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path, flags: Sequence[str]) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in wait()
        command = [sys.executable, "-m", "taskq", "worker", APP_REF, *flags]
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait for the worker's first log line (it announces itself just before claiming)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early: {self.tail()}")
            if self.log_path.stat().st_size > 0:
                return
            time.sleep(0.005)
        raise RuntimeError(f"worker not ready after {timeout:g}s: {self.tail()}")

    def wait(self, timeout: float = 60.0) -> float:
        """Wait for the process to exit; returns when (``perf_counter``) it was seen gone."""
        try:
            code = self.proc.wait(timeout)
        finally:
            self._log.close()
        # -SIGTERM: a second SIGTERM that landed while the interpreter was already tearing down
        if code not in (0, 1, -signal.SIGKILL, -signal.SIGTERM):
            raise RuntimeError(f"worker exited with {code}: {self.tail()}")
        return time.perf_counter()

    def stop(self, now: bool = False) -> None:
        """SIGTERM (graceful); ``now=True`` sends a second one, which exits at once."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if now:
                time.sleep(0.1)
                if self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGTERM)
        self.wait()

    def kill9(self) -> None:
        """SIGKILL: the worker dies holding whatever it holds."""
        self.proc.kill()
        self.wait()

    def tail(self, lines: int = 5) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text("utf-8", errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def events(self) -> list[dict[str, Any]]:
        """The worker's JSON log lines, parsed (other lines are skipped)."""
        out = []
        for line in self.log_path.read_text("utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out


def interpreter_start() -> float:
    """Seconds to start and exit a bare ``python -c pass`` (the floor of worker start-up)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started
