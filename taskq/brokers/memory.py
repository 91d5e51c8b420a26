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
    Ack,
    Bury,
    ClaimBatch,
    Claimed,
    EnqueueItem,
    JobRecord,
    Lease,
    QueueCounts,
    RetryLater,
    WorkerInfo,
    due_after,
)
from .memory_queue import DEAD, MemoryJob, MemoryQueue

log = logging.getLogger(__name__)

_SWEEP_LIMIT = 100  # expired results dropped per ack/claim, so no single call pays for a backlog


class MemoryBroker:
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

    def claim(self, queues: Sequence[str], limit: int, lease_ms: int, worker: str) -> ClaimBatch:
        claimed: list[Claimed] = []
        with self._lock:
            now = self._now()
            self._recover(queues, now)
            self._sweep_results(now)
            dues: list[int] = []
            for q in filter(None, map(self._queues.get, queues)):
                while (job := q.first_waiting()) is not None and job.due_ms <= now:
                    if len(claimed) == limit:
                        break
                    q.claim(job, now + lease_ms, worker)
                    lease = Lease(q.name, job.job_id, job.token)
                    claimed.append(Claimed(lease, job.body, job.attempt, job.crashes))
                if job is not None:
                    dues.append(job.due_ms)
            return ClaimBatch(claimed, max(0, min(dues) - now) if dues else None)

    def extend(self, leases: Sequence[Lease], lease_ms: int) -> list[bool]:
        out: list[bool] = []
        with self._lock:
            now = self._now()
            for lease in leases:
                job = self._running(lease)
                out.append(job is not None and job.lease_until_ms >= now)
                if job is not None and out[-1]:
                    job.lease_until_ms = now + lease_ms
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
                self._queues[job.queue].remove(job.job_id)
                if item.result is not None and item.result_ttl_ms > 0:
                    expires = now + item.result_ttl_ms
                    self._results[(job.queue, job.job_id)] = (item.result, expires)
                    heapq.heappush(self._result_expiry, (expires, job.queue, job.job_id))
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
            for item in items:
                job = self._running(item.lease)
                out.append(job is not None)
                if job is None:
                    continue
                if not item.count_attempt:
                    job.attempt -= 1
                if item.failure is not None:
                    job.failure = item.failure
                self._queues[job.queue].make_waiting(job, due_after(now, item.delay_ms))
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
                    self._queues[job.queue].bury(job, item.failure, now, self._retention)
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

    def close(self) -> None:
        with self._lock:
            self._watchers.clear()

    # -- Inspector ---------------------------------------------------------------------------

    def queues(self) -> list[str]:
        with self._lock:
            return sorted(self._queues)

    def counts(self, queue: str) -> QueueCounts:
        with self._lock:
            now = self._now()
            q = self._queues.get(queue) or MemoryQueue(queue)
            due = sum(1 for job in q.waiting.values() if job.due_ms <= now)
            return QueueCounts(due, len(q.waiting) - due, len(q.running), len(q.dead))

    def get(self, queue: str, job_id: str) -> JobRecord | None:
        with self._lock:
            now = self._now()
            q = self._queues.get(queue)
            job = q.jobs.get(job_id) if q else None
            if job is not None:
                return job.record(now)
            kept = self._results.get((queue, job_id))
            if kept is None or kept[1] <= now:
                return None
            return JobRecord(queue, job_id, "succeeded", None, 0, result=kept[0])

    def cancel(self, queue: str, job_id: str) -> bool:
        with self._lock:
            q = self._queues.get(queue)
            if q is None or job_id not in q.waiting:
                return False
            q.remove(job_id)
            return True

    def dead(self, queue: str, offset: int = 0, limit: int = 100) -> list[JobRecord]:
        with self._lock:
            now = self._now()
            q = self._queues.get(queue)
            newest_first = list(reversed(q.dead.values())) if q else []
            return [job.record(now) for job in newest_first[offset : offset + limit]]

    def requeue_dead(self, queue: str, job_ids: Sequence[str]) -> int:
        written: list[tuple[str, int]] = []
        with self._lock:
            now = self._now()
            q = self._queues.get(queue) or MemoryQueue(queue)
            for job_id in dict.fromkeys(job_ids):
                job = q.dead.get(job_id)
                if job is not None:
                    job.attempt, job.crashes = 0, 0
                    q.make_waiting(job, now)
                    written.append((queue, 0))
        self._wake(written)
        return len(written)

    def purge_dead(self, queue: str) -> int:
        with self._lock:
            q = self._queues.get(queue)
            return q.purge_dead() if q else 0

    def heartbeat(self, info: WorkerInfo, ttl_ms: int) -> None:
        with self._lock:
            now = self._now()
            self._workers[info.worker] = (replace(info, seen_at_ms=now), now + ttl_ms)

    def forget_worker(self, worker: str) -> None:
        with self._lock:
            self._workers.pop(worker, None)

    def workers(self) -> list[WorkerInfo]:
        with self._lock:
            now = self._now()
            for name in [w for w, (_, expires) in self._workers.items() if expires <= now]:
                del self._workers[name]
            return [info for _, (info, _) in sorted(self._workers.items())]
