"""The broker protocols: the narrow one the worker and producers use, and the inspection one.

A broker only moves bytes atomically; retry maths, states and logging live in the core and the
worker. Every time decision (is a job due, has a lease expired) is made with the broker's own
clock (Redis ``TIME``; the local clock for the embedded brokers), so producers' and workers'
clocks never decide when a job runs. Durations cross this boundary as whole milliseconds.

Job life cycle inside a broker::

    enqueue ──> waiting ──claim──> running ──ack──> succeeded (finished record; result for its TTL)
               ^ │ (scheduled  │  │
               │ │  or due)    │  └──bury──> dead ──requeue_dead──> waiting
               │ └──cancel──> cancelled (finished record)   running ──cancel──> cancel requested
               └────retry──────┘ (a retry of a job whose cancel was requested ends it cancelled)
               └── lease expired (recover) ──┘

Finished records (succeeded and cancelled jobs) are kept per queue up to ``Retention``'s count
and age, so a job's end is known for a while without storing its (often ``None``) value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..serialization import packb, unpackb

# What :meth:`Broker.extend` says of each lease (0 and 1 read as False and True).
REFUSED, RENEWED, CANCEL_REQUESTED = 0, 1, 2

# The job states an inspector reports.
STATES = ("scheduled", "due", "running", "succeeded", "cancelled", "dead")
LISTED_STATES = ("scheduled", "due", "running", "dead")  # what Inspector.jobs lists


def check_page(offset: int, limit: int) -> None:
    """Raise ``ValueError`` unless ``offset >= 0`` and ``limit >= 1``: a page every broker
    reads alike (Redis ranges, SQLite ``LIMIT`` and list slices each read the rest otherwise)."""
    if offset < 0 or limit < 1:
        raise ValueError(f"a page needs offset >= 0 and limit >= 1, got {offset} and {limit}")


def due_after(now_ms: int, delay_ms: int) -> int:
    """The due time of a job delayed ``delay_ms`` from ``now_ms`` (a clock read rounded down).

    A delay counts from the next whole millisecond, so a job is never due before the true
    enqueue time plus its delay; a job with no delay is due at once.
    """
    return now_ms + 1 + delay_ms if delay_ms > 0 else now_ms


@dataclass(frozen=True)
class EnqueueItem:
    """One job to write: its body is an encoded :class:`taskq.job.Job`."""

    queue: str
    job_id: str
    body: bytes
    delay_ms: int = 0  # due this long after the broker's "now"
    due_at_ms: int | None = None  # absolute due time (ms since the epoch); wins over delay_ms

    def due(self, now_ms: int) -> int:
        """When this job is due, given the broker's clock read ``now_ms``."""
        return due_after(now_ms, self.delay_ms) if self.due_at_ms is None else self.due_at_ms


@dataclass(frozen=True)
class Lease:
    """Proof of ownership of a running job: ack, retry, bury and extend need a current token."""

    queue: str
    job_id: str
    token: int


@dataclass(frozen=True)
class Claimed:
    """A job handed to a worker by :meth:`Broker.claim`."""

    lease: Lease
    body: bytes
    attempt: int  # 1 on the first claim; every claim counts, including ones whose worker died
    crashes: int  # how many leases of this job expired before its worker finished it
    # ms until the job is due, by the broker's clock when it was claimed: 0 for a job due
    # already; more for one claimed ahead (see Broker.claim), which must not start before then
    wait_ms: float = 0.0

    @property
    def job_id(self) -> str:
        return self.lease.job_id

    @property
    def queue(self) -> str:
        return self.lease.queue


@dataclass(frozen=True)
class ClaimBatch:
    """What one claim returned, and how long until the next waiting job of those queues is due."""

    jobs: list[Claimed]
    next_due_ms: float | None  # None: nothing waiting at all; 0: more is due now


@dataclass(frozen=True)
class Failure:
    """Why an attempt failed: stored with retried and dead jobs."""

    error_type: str
    message: str
    traceback: str = ""
    reason: str = "failed"  # failed | exhausted | unknown-task | undecodable | crashed | ...

    def pack(self) -> bytes:
        """The stored form (a msgpack list), written by every broker."""
        return packb([self.error_type, self.message, self.traceback, self.reason])

    @classmethod
    def unpack(cls, data: bytes) -> Failure:
        """Read :meth:`pack`'s output."""
        error_type, message, traceback, reason = unpackb(data)
        return cls(error_type, message, traceback, reason)


@dataclass(frozen=True)
class Ack:
    """A job that succeeded; ``result`` is kept for ``result_ttl_ms`` (nothing kept if 0/None)."""

    lease: Lease
    result: bytes | None = None
    result_ttl_ms: int = 0


@dataclass(frozen=True)
class RetryLater:
    """A job to run again after ``delay_ms``: due now goes to the end of the line.

    ``count_attempt=False`` hands the job back without spending an attempt (graceful shutdown);
    due now, it goes back to the head of the line (:attr:`to_front`).
    """

    lease: Lease
    delay_ms: int
    failure: Failure | None = None
    count_attempt: bool = True

    @property
    def to_front(self) -> bool:
        """Handed back and due now: ahead of every waiting job, as before its claim (retry.lua
        applies the same rule to the flags it is sent)."""
        return not self.count_attempt and self.delay_ms == 0


@dataclass(frozen=True)
class Bury:
    """A job to move to the dead-letter store."""

    lease: Lease
    failure: Failure


@runtime_checkable
class Broker(Protocol):
    """The verbs a producer and a worker need; every method is thread-safe.

    Batch verbs return one ``bool`` per item: ``False`` means the broker refused it (for ack,
    retry, bury and extend: the token is stale, the lease was lost; for enqueue: a job with that
    id is already waiting or running, so nothing was written).
    """

    url: str  # printable, password masked

    def enqueue(self, items: Sequence[EnqueueItem]) -> list[bool]: ...

    def claim(
        self, queues: Sequence[str], limit: int, lease_ms: int, worker: str, ahead_ms: float = 0
    ) -> ClaimBatch:
        """Atomically move up to ``limit`` due jobs to running, recovering expired leases first.

        Jobs due within ``ahead_ms`` are claimed too, after the due ones, each with its
        ``wait_ms``: a worker holds such a job under its lease and starts it then, by its own
        timer, so its start waits for no round trip to the broker."""
        ...

    def extend(self, leases: Sequence[Lease], lease_ms: int) -> list[int]:
        """Renew leases to ``now + lease_ms``: one ``REFUSED`` (stale token or expired lease),
        ``RENEWED`` or ``CANCEL_REQUESTED`` (renewed, and someone asked to cancel the job)."""
        ...

    def ack(self, items: Sequence[Ack]) -> list[bool]: ...

    def retry(self, items: Sequence[RetryLater]) -> list[bool]: ...

    def bury(self, items: Sequence[Bury]) -> list[bool]: ...

    def recover(self, queues: Sequence[str]) -> int:
        """Make every job whose lease expired due again (token bumped); returns how many."""
        ...

    def watch(self, queues: Sequence[str], wake: Callable[[int], None]) -> Callable[[], None]:
        """Call ``wake(delay_ms)`` from any thread when a job is enqueued to one of ``queues``.

        ``delay_ms`` is how long until that job is due (0 = now). Returns a function that stops
        watching. Wake-ups are a hint: a worker still polls, so a lost wake-up only delays.
        """
        ...

    def warnings(self) -> list[str]:
        """Settings of the broker's server that put jobs at risk, one sentence each (or none).

        A worker logs them at start; ``taskq worker --strict`` refuses to start if there are any.
        """
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class QueueCounts:
    """How many jobs of a queue are in each broker state."""

    due: int
    scheduled: int
    running: int
    dead: int


@dataclass(frozen=True)
class JobRecord:
    """Everything a broker knows of one job (see :meth:`Inspector.get`).

    A finished record (``succeeded`` or ``cancelled``) has no body: only its state, time,
    attempts, worker and (while kept) result.
    """

    queue: str
    job_id: str
    state: str  # one of STATES
    body: bytes | None
    attempt: int
    due_at_ms: int | None = None  # waiting jobs (Redis: None for a due job far down its list)
    lease_until_ms: int | None = None  # running jobs
    failure: Failure | None = None  # last failure (retried or dead jobs)
    result: bytes | None = None  # succeeded jobs, while the result is kept
    finished_at_ms: int | None = None  # succeeded, cancelled and dead jobs: when they ended
    worker: str | None = None  # running: who holds the lease; succeeded: who ran it
    cancel_requested: bool = False  # running jobs asked to stop
    result_kept: bool = False  # succeeded jobs: a result was stored (it may have expired since)


@dataclass(frozen=True)
class MinuteCounts:
    """Attempts of a queue that succeeded and failed within one minute (broker's clock)."""

    minute_ms: int  # start of the minute, ms since the epoch
    succeeded: int
    failed: int  # failed attempts, retried or buried


class FinishWaiter(Protocol):
    """Listens for the end of one job; made by :meth:`Inspector.finishes`."""

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; ``True`` when the job may have ended (a hint: check)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class WorkerInfo:
    """A live worker, as it announces itself with :meth:`Inspector.heartbeat`."""

    worker: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    running: int
    started_at_ms: int
    seen_at_ms: int = 0  # filled in by the broker


@runtime_checkable
class Inspector(Protocol):
    """Read and repair: counts, single jobs, the dead-letter store, worker heartbeats."""

    def queues(self) -> list[str]: ...

    def counts(self, queue: str) -> QueueCounts: ...

    def get(self, queue: str, job_id: str) -> JobRecord | None: ...

    def cancel(self, queue: str, job_id: str) -> str | None:
        """Cancel a job: ``"cancelled"`` (it was waiting; removed atomically, finished record
        kept), ``"requested"`` (it is running; its worker hears at its next lease renewal), or
        ``None`` (it is not waiting or running)."""
        ...

    def jobs(self, queue: str, state: str, offset: int = 0, limit: int = 100) -> list[JobRecord]:
        """A page of the jobs in one of ``LISTED_STATES``: waiting ones by due time, running
        ones by lease end, dead ones newest first; ``ValueError`` for an offset below 0 or a
        limit below 1."""
        ...

    def finishes(self, queue: str, job_id: str) -> FinishWaiter:
        """Start listening for the end of a job; no end after this returns is missed."""
        ...

    def rates(self, queue: str, minutes: int = 5) -> list[MinuteCounts]:
        """Succeeded and failed attempts per minute, the current minute first (at most 60)."""
        ...

    def dead(self, queue: str, offset: int = 0, limit: int = 100) -> list[JobRecord]:
        """``jobs(queue, "dead", offset, limit)``: dead jobs, newest first."""
        ...

    def requeue_dead(self, queue: str, job_ids: Sequence[str]) -> int:
        """Make dead jobs due again with a fresh attempt count; returns how many moved."""
        ...

    def purge_dead(self, queue: str) -> int: ...

    def heartbeat(self, info: WorkerInfo, ttl_ms: int) -> None: ...

    def forget_worker(self, worker: str) -> None: ...

    def workers(self) -> list[WorkerInfo]: ...
