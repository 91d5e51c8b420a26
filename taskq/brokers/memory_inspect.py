"""Inspection and repair of the memory broker: counts, jobs, finished records, dead letters."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import replace

from . import Retention
from .base import LISTED_STATES, JobRecord, MinuteCounts, QueueCounts, WorkerInfo, check_page
from .memory_queue import MemoryQueue


class MemoryFinishWaiter:
    """Set by the broker when one job ends; see :meth:`MemoryInspection.finishes`."""

    def __init__(self, close: Callable[[MemoryFinishWaiter], None]) -> None:
        self.event = threading.Event()
        self._close = close

    def wait(self, timeout: float) -> bool:
        ended = self.event.wait(max(timeout, 0.0))
        self.event.clear()
        return ended

    def close(self) -> None:
        self._close(self)


class MemoryInspection:
    """The :class:`~taskq.brokers.base.Inspector` half of :class:`MemoryBroker`."""

    _lock: threading.Lock
    _queues: dict[str, MemoryQueue]
    _results: dict[tuple[str, str], tuple[bytes, int]]
    _workers: dict[str, tuple[WorkerInfo, int]]
    _waiters: dict[tuple[str, str], set[MemoryFinishWaiter]]
    _retention: Retention

    def _now(self) -> int:
        raise NotImplementedError

    def _wake(self, written: list[tuple[str, int]]) -> None:
        raise NotImplementedError

    def _finished(self, q: MemoryQueue, record: JobRecord) -> None:
        """Keep a finished record and tell whoever waits for that job (the lock is held)."""
        q.finish(record, self._retention)
        for waiter in self._waiters.get((q.name, record.job_id), ()):
            waiter.event.set()

    def _ended(self, queue: str, job_id: str) -> None:
        """Tell whoever waits for that job that it ended otherwise (dead; the lock is held)."""
        for waiter in self._waiters.get((queue, job_id), ()):
            waiter.event.set()

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
            result = kept[0] if kept is not None and kept[1] > now else None
            finished = q.finished.get(job_id) if q else None
            if finished is not None:
                return replace(finished, result=result if finished.state == "succeeded" else None)
            if result is None:
                return None
            return JobRecord(queue, job_id, "succeeded", None, 0, result=result, result_kept=True)

    def cancel(self, queue: str, job_id: str) -> str | None:
        with self._lock:
            q = self._queues.get(queue)
            if q is None:
                return None
            job = q.running.get(job_id)
            if job is not None:
                job.cancel_requested = True
                return "requested"
            job = q.waiting.get(job_id)
            if job is None:
                return None
            now = self._now()
            record = JobRecord(queue, job_id, "cancelled", None, job.attempt, finished_at_ms=now)
            self._finished(q, record)
            return "cancelled"

    def jobs(self, queue: str, state: str, offset: int = 0, limit: int = 100) -> list[JobRecord]:
        if state not in LISTED_STATES:
            raise ValueError(f"state must be one of {', '.join(LISTED_STATES)}, got {state!r}")
        check_page(offset, limit)
        with self._lock:
            now = self._now()
            q = self._queues.get(queue)
            if q is None:
                return []
            if state == "dead":
                found = list(reversed(q.dead.values()))
            elif state == "running":
                found = sorted(q.running.values(), key=lambda j: (j.lease_until_ms, j.seq))
            else:
                due = state == "due"
                waiting = [j for j in q.waiting.values() if (j.due_ms <= now) == due]
                found = sorted(waiting, key=lambda j: (j.due_ms, j.seq))
            return [job.record(now) for job in found[offset : offset + limit]]

    def finishes(self, queue: str, job_id: str) -> MemoryFinishWaiter:
        key = (queue, job_id)

        def close(waiter: MemoryFinishWaiter) -> None:
            with self._lock:
                waiters = self._waiters.get(key, set())
                waiters.discard(waiter)
                if not waiters:
                    self._waiters.pop(key, None)

        waiter = MemoryFinishWaiter(close)
        with self._lock:
            self._waiters.setdefault(key, set()).add(waiter)
        return waiter

    def rates(self, queue: str, minutes: int = 5) -> list[MinuteCounts]:
        with self._lock:
            q = self._queues.get(queue) or MemoryQueue(queue)
            return q.rates(self._now(), minutes)

    def dead(self, queue: str, offset: int = 0, limit: int = 100) -> list[JobRecord]:
        return self.jobs(queue, "dead", offset, limit)

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
