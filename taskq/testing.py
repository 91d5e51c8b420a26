"""Helpers for your own tests: a clock you move by hand, and ``drain`` to run jobs in-process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .app import App
from .brokers.base import Ack, Bury, Claimed, Failure, RetryLater
from .serialization import unpackb
from .worker import outcomes
from .worker.outcome import Attempt, Outcome, admit, run_attempt
from .worker.threads import TaskThreads

DRAIN_LEASE_MS = 3_600_000  # jobs run one after another in the caller's thread: no renewals


class FakeClock:
    """A clock that moves only when told: ``App("memory://", clock=FakeClock())``.

    With it, :func:`drain` jumps over delays and retry backoff instead of sleeping through them.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self.now += seconds


@dataclass
class DrainReport:
    """What :func:`drain` ran: results of succeeded jobs, failures of dead ones, retries."""

    results: dict[str, Any] = field(default_factory=dict)  # job id -> returned value
    dead: dict[str, Failure] = field(default_factory=dict)  # job id -> why it died
    retries: int = 0  # failed attempts that were retried
    scheduled: int = 0  # jobs left waiting for a due time (only without a FakeClock)
    hit_max_jobs: bool = False  # it stopped after max_jobs with jobs still waiting (a task that
    # enqueues itself forever, say): assert it is False when all should have run

    @property
    def succeeded(self) -> list[str]:
        return list(self.results)


def drain(app: App, queues: Sequence[str] | None = None, max_jobs: int = 100_000) -> DrainReport:
    """Run every job enqueued so far — and the jobs they enqueue, and their retries — here and
    now, one at a time, as a worker would (same retries, dead-letter reasons and stored results).

    With the app's clock a :class:`FakeClock`, scheduled jobs and retries are run too: the clock
    is moved to each next due time. Otherwise jobs not yet due are left and counted in
    ``scheduled``. Works on any broker; ``memory://`` is made for it.
    """
    broker = app.broker
    queues = list(
        queues
        or sorted({t.options.queue for t in app.tasks.values()} | set(app.inspector.queues()))
    )
    clock = app.clock if isinstance(app.clock, FakeClock) else None
    report = DrainReport()
    ran = 0
    while ran < max_jobs:
        batch = broker.claim(queues, 1, DRAIN_LEASE_MS, "taskq-testing")
        if not batch.jobs:
            if batch.next_due_ms is None:
                break
            if clock is None:
                report.scheduled = sum(app.inspector.counts(q).scheduled for q in queues)
                break
            clock.advance(max(batch.next_due_ms, 1) / 1000)
            continue
        outcome = _run_in_own_loop(app, batch.jobs[0])
        outcomes.write(broker, [outcome])
        _note(report, outcome)
        ran += 1
    else:
        counts = [app.inspector.counts(q) for q in queues]
        report.hit_max_jobs = any(c.due or c.scheduled for c in counts)
    return report


def _note(report: DrainReport, outcome: Outcome) -> None:
    job_id = outcome.lease.job_id
    if isinstance(outcome, Ack):
        report.results[job_id] = unpackb(outcome.result) if outcome.result else None
    elif isinstance(outcome, RetryLater):
        report.retries += 1
    elif isinstance(outcome, Bury):
        report.dead[job_id] = outcome.failure


def _run_in_own_loop(app: App, claimed: Claimed) -> Outcome:
    """Run one attempt on an event loop of its own (in a thread if the caller has one running)."""

    async def attempt() -> Outcome:
        threads = TaskThreads(1)
        try:
            held = Attempt(claimed)
            admitted = admit(app, held)
            if isinstance(admitted, Bury):
                return admitted
            job, task = admitted
            return await run_attempt(task, job, held, threads)
        finally:
            threads.stop()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(attempt())
    box: list[Outcome] = []
    thread = threading.Thread(target=lambda: box.append(asyncio.run(attempt())))
    thread.start()
    thread.join()
    return box[0]
