"""Small builders shared by the broker contract tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from taskq.brokers.base import Claimed, EnqueueItem, Failure

FAILURE = Failure("ValueError", "boom", "Traceback (most recent call last): ...", "failed")
LONG_LEASE_MS = 30_000

MakeBroker = Callable[..., Any]  # (namespace=None, retention=None) -> a Broker and Inspector


def now_ms() -> int:
    """The test's clock in ms; the brokers under test run on this machine (Redis included)."""
    return int(time.time() * 1000)


def item(
    job_id: str, queue: str = "q", delay_ms: int = 0, due_at_ms: int | None = None
) -> EnqueueItem:
    """An item whose body names its id, so a claimed body shows which write won."""
    return EnqueueItem(queue, job_id, f"body-{job_id}".encode(), delay_ms, due_at_ms)


def claim_one(broker: Any, queue: str = "q", lease_ms: int = LONG_LEASE_MS) -> Claimed:
    """Claim exactly one job of ``queue``; fails the test if there is none."""
    batch = broker.claim([queue], 1, lease_ms, "worker-1")
    assert len(batch.jobs) == 1, batch
    job: Claimed = batch.jobs[0]
    return job


def ids(jobs: list[Any]) -> list[str]:
    """The job ids of claimed jobs or job records, in order."""
    return [job.job_id for job in jobs]
