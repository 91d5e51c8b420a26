"""The jobs of one queue of the memory broker, indexed by state; the caller holds the lock."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field

from . import Retention
from .base import Failure, JobRecord, MinuteCounts

WAITING, RUNNING, DEAD = "waiting", "running", "dead"


@dataclass
class MemoryJob:
    """One job of a :class:`MemoryQueue`, in whichever state it is."""

    queue: str
    job_id: str
    body: bytes
    state: str = WAITING
    due_ms: int = 0
    attempt: int = 0
    crashes: int = 0
    token: int = 0
    lease_until_ms: int = 0
    dead_at_ms: int = 0
    worker: str = ""
    failure: Failure | None = None
    seq: int = 0  # tells the live due-heap entry of this job from stale ones
    cancel_requested: bool = False

    def record(self, now: int) -> JobRecord:
        """This job as :meth:`~taskq.brokers.base.Inspector.get` reports it."""
        state = self.state
        if state == WAITING:
            state = "due" if self.due_ms <= now else "scheduled"
        return JobRecord(
            self.queue,
            self.job_id,
            state,
            self.body,
            self.attempt,
            due_at_ms=self.due_ms if self.state == WAITING else None,
            lease_until_ms=self.lease_until_ms if self.state == RUNNING else None,
            failure=self.failure,
            finished_at_ms=self.dead_at_ms if self.state == DEAD else None,
            worker=self.worker or None,
            cancel_requested=self.cancel_requested,
        )


@dataclass
class MemoryQueue:
    """Every job of one queue, with an index per state."""

    name: str
    jobs: dict[str, MemoryJob] = field(default_factory=dict)  # any state
    waiting: dict[str, MemoryJob] = field(default_factory=dict)
    running: dict[str, MemoryJob] = field(default_factory=dict)
    dead: OrderedDict[str, MemoryJob] = field(default_factory=OrderedDict)  # oldest burial first
    # (due_ms, seq, job_id) of waiting jobs; entries of jobs that left waiting are skipped lazily
    heap: list[tuple[int, int, str]] = field(default_factory=list)
    seq: int = 0
    token_seq: int = 0  # never reset, so a reused job id never gets a token it had before
    finished: OrderedDict[str, JobRecord] = field(default_factory=OrderedDict)  # oldest first
    minutes: dict[int, list[int]] = field(default_factory=dict)  # minute -> [succeeded, failed]

    def add(self, job_id: str, body: bytes, due_ms: int) -> MemoryJob:
        """A new waiting job, replacing a dead one of the same id."""
        self.remove(job_id)
        job = self.jobs[job_id] = MemoryJob(self.name, job_id, body)
        self.make_waiting(job, due_ms)
        return job

    def remove(self, job_id: str) -> None:
        """Forget a job, whatever its state (its finished record too)."""
        self.finished.pop(job_id, None)
        self.jobs.pop(job_id, None)
        self.running.pop(job_id, None)
        self.dead.pop(job_id, None)
        if self.waiting.pop(job_id, None) is not None:
            self._compact()

    def make_waiting(self, job: MemoryJob, due_ms: int) -> None:
        """Move ``job`` (waiting already, running or dead) to waiting, due at ``due_ms``."""
        self.running.pop(job.job_id, None)
        self.dead.pop(job.job_id, None)
        self.seq += 1
        job.state, job.due_ms, job.seq = WAITING, due_ms, self.seq
        job.lease_until_ms, job.dead_at_ms, job.worker = 0, 0, ""
        self.waiting[job.job_id] = job
        heapq.heappush(self.heap, (due_ms, job.seq, job.job_id))

    def front_due(self, now: int) -> int:
        """The due time that puts a job back ahead of every waiting one, as it was before its
        claim: ``now``, or 1 ms before the first waiting job if that one is due already."""
        head = self.first_waiting()
        return now if head is None else min(now, head.due_ms - 1)

    def first_waiting(self) -> MemoryJob | None:
        """The waiting job due first (the oldest entry among equal due times)."""
        while self.heap:
            _, seq, job_id = self.heap[0]
            job = self.waiting.get(job_id)
            if job is not None and job.seq == seq:
                return job
            heapq.heappop(self.heap)
        return None

    def _compact(self) -> None:
        # Removed jobs leave stale entries deep in the heap; rebuild before they dominate it.
        if len(self.heap) > 2 * len(self.waiting) + 64:
            self.heap = [(j.due_ms, j.seq, j.job_id) for j in self.waiting.values()]
            heapq.heapify(self.heap)

    def claim(self, job: MemoryJob, lease_until_ms: int, worker: str) -> None:
        """Move a waiting job to running under a new token, counting the attempt."""
        del self.waiting[job.job_id]
        self.token_seq += 1
        job.state, job.token, job.worker = RUNNING, self.token_seq, worker
        job.attempt += 1
        job.lease_until_ms = lease_until_ms
        self.running[job.job_id] = job

    def recover(self, now: int) -> int:
        """Make every running job whose lease expired before ``now`` due again, ahead of every
        waiting job (a dead worker's jobs do not wait behind the backlog again); how many."""
        expired = [job for job in self.running.values() if job.lease_until_ms < now]
        due = self.front_due(now)
        for job in expired:
            self.token_seq += 1
            job.token, job.crashes = self.token_seq, job.crashes + 1
            self.make_waiting(job, due)
        return len(expired)

    def bury(self, job: MemoryJob, failure: Failure, now: int, retention: Retention) -> None:
        """Move a running job to dead, then drop the dead jobs ``retention`` does not keep."""
        del self.running[job.job_id]
        job.state, job.failure, job.dead_at_ms = DEAD, failure, now
        job.lease_until_ms, job.worker, job.cancel_requested = 0, "", False
        self.dead[job.job_id] = job
        oldest_kept = now - retention.dead_ttl_ms
        while self.dead and (
            len(self.dead) > retention.dead_max
            or next(iter(self.dead.values())).dead_at_ms < oldest_kept
        ):
            _, old = self.dead.popitem(last=False)
            del self.jobs[old.job_id]

    def purge_dead(self) -> int:
        """Drop every dead job; how many."""
        count = len(self.dead)
        for job_id in self.dead:
            del self.jobs[job_id]
        self.dead.clear()
        return count

    def finish(self, record: JobRecord, retention: Retention) -> None:
        """Forget a job and keep its finished record, then drop the records beyond retention."""
        self.remove(record.job_id)
        self.finished[record.job_id] = record
        oldest_kept = (record.finished_at_ms or 0) - retention.finished_ttl_ms
        while self.finished and (
            len(self.finished) > retention.finished_max
            or (next(iter(self.finished.values())).finished_at_ms or 0) < oldest_kept
        ):
            self.finished.popitem(last=False)

    def count(self, now: int, succeeded: int = 0, failed: int = 0) -> None:
        """Add to this minute's counts; minutes older than an hour are dropped."""
        minute = now // 60_000
        counts = self.minutes.setdefault(minute, [0, 0])
        counts[0] += succeeded
        counts[1] += failed
        for old in [m for m in self.minutes if m <= minute - 60]:
            del self.minutes[old]

    def rates(self, now: int, minutes: int) -> list[MinuteCounts]:
        """The counts of the last ``minutes`` minutes, the current one first."""
        minute = now // 60_000
        out = []
        for m in range(minute, minute - min(minutes, 60), -1):
            succeeded, failed = self.minutes.get(m, (0, 0))
            out.append(MinuteCounts(m * 60_000, succeeded, failed))
        return out
