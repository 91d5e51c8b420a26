"""Recovery time: kill -9 a worker holding a job, time until another worker runs it again."""

from __future__ import annotations

import time
from collections.abc import Callable

from taskq.brokers.base import Inspector
from taskq.worker.options import WorkerOptions

from .common import Row, Settings, fresh, median, skipped
from .workers import WorkerProcess

DEFAULT = WorkerOptions()
LEASE = 2.0  # seconds; the default (25 s) works the same, only 12.5x slower to measure
QUEUE = "default"


def _once(settings: Settings) -> float:
    flags = ["--lease", f"{LEASE:g}s", "--log-format", "json"]
    with fresh(settings) as f:
        inspector = f.app.inspector
        holder = WorkerProcess(f.env, settings.scratch / f"{f.namespace}-a.log", flags)
        rescuer = None
        try:
            holder.wait_ready()
            job_id = f.app.tasks["sleep"].delay(30.0).id
            _wait_for(lambda: _state(inspector, job_id) == ("running", 1), "first claim")
            rescuer = WorkerProcess(f.env, settings.scratch / f"{f.namespace}-b.log", flags)
            rescuer.wait_ready()
            killed = time.perf_counter()
            holder.kill9()
            _wait_for(
                lambda: _state(inspector, job_id) == ("running", 2), "recovery", 4 * LEASE + 5
            )
            return time.perf_counter() - killed
        finally:
            if holder.proc.poll() is None:
                holder.kill9()
            if rescuer is not None:
                rescuer.stop(now=True)


def _state(inspector: Inspector, job_id: str) -> tuple[str, int] | None:
    record = inspector.get(QUEUE, job_id)
    return None if record is None else (record.state, record.attempt)


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.005)


def run(settings: Settings) -> list[Row]:
    """The median recovery time next to the lease it is bounded by."""
    if settings.kind == "memory":
        why = "memory:// lives in one process; there is no worker process to kill"
        return [skipped("recovery after kill -9", why)]
    times = [_once(settings) for _ in range(settings.repeat)]
    return [
        Row(
            f"recovery after kill -9 (lease {LEASE:g}s)",
            median(times),
            "s",
            LEASE,
            "the lease (--lease 2s)",
            f"range {min(times):.2f}-{max(times):.2f}s; recovery = lease - (0..lease/3 since "
            f"last renewal) + (0..poll interval 1s); default {DEFAULT.lease:g}s lease: "
            f"~{DEFAULT.lease * 2 / 3:.0f}-{DEFAULT.lease + DEFAULT.poll_interval:.0f}s",
        )
    ]
