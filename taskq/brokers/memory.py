"""An in-process broker for tests and demos: all of its state lives in one object under one lock."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from . import Retention
from .base import (
    CANCEL_REQUESTED,
    RENEWED,
    Ack,
    Bury,
    ClaimBatch,
    Claimed,
    EnqueueItem,
    JobRecord,
    Lease,
    RetryLater,
    WorkerInfo,
    due_after,
)
from .memory_inspect import MemoryFinishWaiter, MemoryInspection
from .memory_queue import DEAD, MemoryJob, MemoryQueue

log = logging.getLogger(__name__)

_SWEEP_LIMIT = 100  # expired results dropped per ack/claim, so no single call pays for a backlog


class MemoryBroker(MemoryInspection):
    """A :class:`~taskq.brokers.base.Broker` and :class:`~taskq.brokers.base.Inspector` in RAM."""

    url = "memory://"

    def __init__(
        self, namespace: str, retention: Retention, clock: Callable[[], float] = time.time
    ) -> None:
        self.namespace = namespace
        self._retention = retention
        self._clock = clock
        self._lock = threading.Lock()
        self._queues: dict[str, MemoryQueue] = {}
        self._results: dict[tuple[str, str], tuple[bytes, int]] = {}  # -> (result, expires_ms)
        self._result_expiry: list[tuple[int, str, str]] = []  # heap of (expires_ms, queue, id)
        self._workers: dict[str, tuple[WorkerInfo, int]] = {}  # -> (info, expires_ms)
        self._watchers: dict[object, tuple[frozenset[str], Callable[[int], None]]] = {}
        self._waiters: dict[tuple[str, str], set[MemoryFinishWaiter]] = {}

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def _running(self, lease: Lease) -> MemoryJob | None:
        q = self._queues.get(lease.queue)
        job = q.running.get(lease.job_id) if q else None
        return job if job is not None and job.token == lease.token else None

    # -- Broker ------------------------------------------------------------------------------

    def enqueue(self, items: Sequence[EnqueueItem]) -> list[bool]:
        written: list[tuple[str, int]] = []
        out: list[bool] = []
        with self._lock:
            now = self._now()
            for item in items:
                q = self._queues.setdefault(item.queue, MemoryQueue(item.queue))
                old = q.jobs.get(item.job_id)
                if old is not None and old.state != DEAD:
                    out.append(False)
                    continue
                due = item.due(now)
                q.add(item.job_id, item.body, due)
                self._results.pop((item.queue, item.job_id), None)
                written.append((item.queue, max(0, due - now)))
                out.append(True)
        self._wake(written)
        return out

    def claim(
        self, queues: Sequence[str], limit: int, lease_ms: int, worker: str, ahead_ms: float = 0
    ) -> ClaimBatch:
        claimed: list[Claimed] = []
        with self._lock:
            now = self._now()
            self._recover(queues, now)
            self._sweep_results(now)
            dues: list[int] = []
            for q in filter(None, map(self._queues.get, queues)):
                while (job := q.first_waiting()) is not None and job.due_ms <= now + ahead_ms:
                    if len(claimed) == limit:
                        break
                    q.claim(job, now + lease_ms, worker)
                    lease = Lease(q.name, job.job_id, job.token)
                    wait = max(job.due_ms - now, 0)
                    claimed.append(Claimed(lease, job.body, job.attempt, job.crashes, wait))
                if job is not None:
                    dues.append(job.due_ms)
            return ClaimBatch(claimed, max(0, min(dues) - now) if dues else None)

    def extend(self, leases: Sequence[Lease], lease_ms: int) -> list[int]:
        out: list[int] = []
        with self._lock:
            now = self._now()
            for lease in leases:
                job = self._running(lease)
                if job is None or job.lease_until_ms < now:
                    out.append(0)
                    continue
                job.lease_until_ms = now + lease_ms
                out.append(CANCEL_REQUESTED if job.cancel_requested else RENEWED)
        return out

    def ack(self, items: Sequence[Ack]) -> list[bool]:
        out: list[bool] = []
        with self._lock:
            now = self._now()
            for item in items:
                job = self._running(item.lease)
                out.append(job is not None)
                if job is None:
                    continue
                q = self._queues[job.queue]
                keep = item.result is not None and item.result_ttl_ms > 0
                self._results.pop((job.queue, job.job_id), None)
                if item.result is not None and keep:
                    expires = now + item.result_ttl_ms
                    self._results[(job.queue, job.job_id)] = (item.result, expires)
                    heapq.heappush(self._result_expiry, (expires, job.queue, job.job_id))
                record = JobRecord(job.queue, job.job_id, "succeeded", None, job.attempt)
                record = replace(record, finished_at_ms=now, worker=job.worker, result_kept=keep)
                self._finished(q, record)
                q.count(now, succeeded=1)
            self._sweep_results(now)
        return out

    def _sweep_results(self, now: int) -> None:
        for _ in range(_SWEEP_LIMIT):
            if not self._result_expiry or self._result_expiry[0][0] > now:
                return
            expires, queue, job_id = heapq.heappop(self._result_expiry)
            kept = self._results.get((queue, job_id))
            if kept is not None and kept[1] == expires:
                del self._results[(queue, job_id)]

    def retry(self, items: Sequence[RetryLater]) -> list[bool]:
        out: list[bool] = []
        written: list[tuple[str, int]] = []
        with self._lock:
            now = self._now()
            front: dict[str, int] = {}  # queue -> due time of the jobs handed back in this call
            for item in items:
                job = self._running(item.lease)
                out.append(job is not None)
                if job is None:
                    continue
                q = self._queues[job.queue]
                if not item.count_attempt:
                    job.attempt -= 1
                if item.failure is not None:
                    job.failure = item.failure
                    q.count(now, failed=1)
                if job.cancel_requested:  # asked to stop: it ends here rather than run again
                    record = JobRecord(q.name, job.job_id, "cancelled", None, job.attempt)
                    self._finished(q, replace(record, finished_at_ms=now, failure=job.failure))
                    continue
                due = due_after(now, item.delay_ms)
                if item.to_front:  # read once per queue: each job made waiting moves the head
                    if q.name not in front:
                        front[q.name] = q.front_due(now)
                    due = front[q.name]
                q.make_waiting(job, due)
                written.append((job.queue, item.delay_ms))
        self._wake(written)
        return out

    def bury(self, items: Sequence[Bury]) -> list[bool]:
        out: list[bool] = []
        with self._lock:
            now = self._now()
            for item in items:
                job = self._running(item.lease)
                out.append(job is not None)
                if job is not None:
                    q = self._queues[job.queue]
                    q.bury(job, item.failure, now, self._retention)
                    q.count(now, failed=1)
                    self._ended(q.name, job.job_id)
        return out

    def recover(self, queues: Sequence[str]) -> int:
        with self._lock:
            return self._recover(queues, self._now())

    def _recover(self, queues: Sequence[str], now: int) -> int:
        return sum(q.recover(now) for q in filter(None, map(self._queues.get, queues)))

    def watch(self, queues: Sequence[str], wake: Callable[[int], None]) -> Callable[[], None]:
        key = object()
        with self._lock:
            self._watchers[key] = (frozenset(queues), wake)

        def stop() -> None:
            with self._lock:
                self._watchers.pop(key, None)

        return stop

    def _wake(self, written: list[tuple[str, int]]) -> None:
        if not written:
            return
        with self._lock:
            watchers = list(self._watchers.values())
        # Called outside the lock, so that a callback may use this broker.
        for queues, wake in watchers:
            delays = [delay for queue, delay in written if queue in queues]
            if delays:
                try:
                    wake(min(delays))
                except Exception:  # a wake-up is a hint: it must not fail a write that happened
                    log.exception("wake-up callback failed")

    def warnings(self) -> list[str]:
        return []  # no server, no settings

    def close(self) -> None:
        with self._lock:
            self._watchers.clear()
