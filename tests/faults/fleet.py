"""Worker processes for the fault tests on any Redis URL (direct or through a proxy), with one
tasks module whose tasks record what they did, where and when (by the true clock)."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from taskq import App
from tests.faults.helpers import Proc, lines, taskq_env, wait_for, write_tasks

TASKS = """
import asyncio

REAL_TIME = getattr(time, "real_time", time.time)  # the true clock, even under the skew shim
ROLE = os.environ.get("ROLE", "")


def stamp(name, tag):
    record(name, f"{tag} {os.getpid()} {REAL_TIME():.3f}")


@app.task
def note(tag: str) -> None:
    record("ran.txt", tag)


@app.task(max_retries=20, backoff=lambda attempt: 0.05)
def short(tag: str, seconds: float) -> None:
    time.sleep(seconds)
    record("ran.txt", tag)


@app.task(max_retries=0)
async def ashort(tag: str, seconds: float) -> None:
    await asyncio.sleep(seconds)
    record("ran.txt", tag)


@app.task
def slow(tag: str, seconds: float) -> str:
    stamp("started.txt", tag)
    time.sleep(seconds)
    stamp("finished.txt", tag)
    return ROLE or str(os.getpid())


@app.task
async def aslow(tag: str, seconds: float) -> str:
    stamp("started.txt", tag)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        stamp("cancelled.txt", tag)
        raise
    stamp("finished.txt", tag)
    return ROLE or str(os.getpid())


@app.task(max_retries=1, no_retry_on=(LookupError,))
def fenced(tag: str, mode: str, seconds: float) -> str:
    stamp("started.txt", tag)
    if ROLE == "stale":
        time.sleep(seconds)
        stamp("finished.txt", tag)
        if mode == "retry":
            raise RuntimeError("the stale worker asks for a retry")
        if mode == "bury":
            raise LookupError("the stale worker would bury it")
    return ROLE


@app.task(max_retries=5)
def die_once(tag: str) -> str:
    # the first attempt dies right after the claim, long before the first lease renewal
    marker = os.path.join(HERE, f"died-{tag}")
    if not os.path.exists(marker):
        stamp("started.txt", tag)
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    stamp("finished.txt", tag)
    return str(os.getpid())
"""

TASK_NAMES = ("note", "short", "ashort", "slow", "aslow", "fenced", "die_once")


def _any(*args: Any, **kwargs: Any) -> Any:
    """Stands in for every task on the test side: the test enqueues by name, never runs them."""


class Fleet:
    """The tasks module for a test's namespace, a test-side App on it, and worker processes."""

    def __init__(self, root: Path, app: App, spawn: Callable[..., Proc], url: str) -> None:
        self.root = root
        self.app = app
        self.spawn = spawn
        self.url = url
        self.count = 0
        write_tasks(root, app.namespace, TASKS)
        for name in TASK_NAMES:
            app.task(name=name)(_any)

    def worker(
        self,
        *flags: str,
        lease: str = "1s",
        grace: str = "5s",
        url: str | None = None,
        **env: str,
    ) -> Proc:
        """A ``taskq worker`` process with JSON logs (DEBUG: with each attempt's ``started`` line)
        and a 50 ms poll interval."""
        self.count += 1
        args = ["worker", "tasks:app", "--log-format", "json", "--log-level", "debug"]
        args += ["--poll-interval", "50ms", "--lease", lease, "--grace", grace, *flags]
        log = self.root / f"worker-{self.count}.log"
        return self.spawn(args, self.root, taskq_env(url or self.url, **env), log)

    def lines(self, name: str) -> list[str]:
        return lines(self.root / name)

    def stamps(self, name: str) -> list[tuple[str, int, float]]:
        """``(tag, pid, true time)`` of each line a task stamped into ``name``."""
        return [(t, int(p), float(s)) for t, p, s in (x.split() for x in self.lines(name))]

    def ran(self) -> collections.Counter[str]:
        return collections.Counter(self.lines("ran.txt"))

    def counts(self, queue: str = "default") -> tuple[int, int, int, int]:
        c = self.app.inspector.counts(queue)
        return (c.due, c.scheduled, c.running, c.dead)

    def wait_started(self, tag: str, count: int = 1, timeout: float = 10) -> list[int]:
        """Wait until job ``tag`` started ``count`` times; the pids that started it."""

        def pids() -> list[int]:
            return [pid for t, pid, _ in self.stamps("started.txt") if t == tag]

        wait_for(lambda: len(pids()) >= count, timeout, f"job {tag!r} to start {count} time(s)")
        return pids()


def events(procs: Iterable[Proc], event: str, job_id: str | None = None) -> list[dict[str, Any]]:
    """The JSON log events named ``event`` (of one job, if given) of all ``procs``."""
    return [
        e
        for p in procs
        for e in p.events()
        if e.get("event") == event and (job_id is None or e.get("job_id") == job_id)
    ]
