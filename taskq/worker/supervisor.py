"""Run N worker processes: restart one that dies (with backoff), forward stop signals to all."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..retry import Backoff
from .logs import log

RESTART = Backoff(initial=0.5, factor=2.0, cap=30.0, jitter=0.2)
STABLE_AFTER = 30.0  # seconds a child must live before its restart backoff is forgotten


@dataclass
class Child:
    """One worker process and its restart history."""

    number: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float = field(default=0.0)
    done: bool = False  # a --burst child that exited 0: its work is done, it is not restarted


class Supervisor:
    """Keeps ``processes`` copies of ``command`` running until a stop signal, then stops them."""

    def __init__(
        self, command: Sequence[str], processes: int, burst: bool = False, broker: str = ""
    ) -> None:
        if processes < 1:
            raise ValueError(f"processes must be >= 1, got {processes}")
        self.command = list(command)
        self.broker = broker  # the URL (password masked) the children work on, for the first line
        self.burst = burst
        self.children = [Child(n) for n in range(processes)]
        self.signals = 0

    def run(self) -> int:
        """Supervise until stopped; returns 0, or 1 if a child had to be killed."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)
        log.info("supervising %d worker processes on %s", len(self.children), self.broker)
        # in burst mode the supervisor ends with its children; restarting a burst worker that
        # found nothing left to do would loop forever
        while not self.signals and not all(child.done for child in self.children):
            now = time.monotonic()
            for child in self.children:
                self._tend(child, now)
            time.sleep(0.1)
        return self._wait_for_children()

    def _tend(self, child: Child, now: float) -> None:
        process = child.process
        if child.done:
            return
        if process is not None and process.poll() is None:
            if child.failures and now - child.started > STABLE_AFTER:
                child.failures = 0
            return
        if process is not None and self.burst and process.returncode == 0:
            log.info("worker process %d (pid %d) finished", child.number, process.pid)
            child.done = True
            child.process = None
            return
        if process is not None:
            child.failures += 1
            delay = RESTART.delay(child.failures)
            child.restart_at = now + delay
            log.warning(
                "worker process %d (pid %d) exited with %s; restarting in %.1fs",
                child.number,
                process.pid,
                process.returncode,
                delay,
            )
            child.process = None
        if now >= child.restart_at:
            # a session of its own: a Ctrl-C at the terminal reaches the children once, through
            # this supervisor, not twice (which would make them exit at once)
            child.process = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, start_new_session=True
            )
            child.started = now
            log.info("worker process %d started (pid %d)", child.number, child.process.pid)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signals += 1
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signum)

    def _wait_for_children(self) -> int:
        code = 0
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait()
            except KeyboardInterrupt:
                child.process.kill()
                code = 1
            if child.process.returncode not in (0, -signal.SIGTERM, -signal.SIGINT):
                code = 1
        return code


def worker_command(argv: Sequence[str]) -> list[str]:
    """The command line of one child: this ``taskq worker`` call without ``--processes``."""
    command = [sys.executable, "-m", "taskq"]
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--processes":
            skip = True
            continue
        if arg.startswith("--processes="):
            continue
        command.append(arg)
    return command
