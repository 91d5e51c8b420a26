"""``JobHandle``: a job's id, and its status, details, result and cancellation."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import Cancelled, JobNotFound, TaskFailed
from .serialization import DecodeError, unpackb

if TYPE_CHECKING:
    from .app import App
    from .brokers.base import Failure, JobRecord

R = TypeVar("R")

STATUSES = ("scheduled", "due", "running", "succeeded", "failed", "dead", "cancelled", "unknown")
SAFETY_POLL = 1.0  # seconds between state checks while waiting, should a notification be lost


def status_of(record: JobRecord | None) -> str:
    """The status a handle reports for what the broker knows of a job.

    A waiting job is ``failed`` (a retry is pending) when it has a failure and has spent
    attempts: a dead job put back keeps its last failure but starts again at attempt 0, so it
    is ``due`` (or ``scheduled``) until an attempt of it fails again.
    """
    if record is None:
        return "unknown"
    waiting = record.state in ("scheduled", "due")
    if waiting and record.failure is not None and record.attempt > 0:
        return "failed"
    return record.state


def find(app: App, job_id: str) -> tuple[str | None, JobRecord | None]:
    """The queue and record of a job in the first of :meth:`App.known_queues` that holds it
    (``None, None`` if none does): one read per queue looked in."""
    for queue in app.known_queues():
        record = app.inspector.get(queue, job_id)
        if record is not None:
            return queue, record
    return None, None


def _time(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)


@dataclass(frozen=True)
class JobInfo:
    """What :meth:`JobHandle.info` reports; times are UTC datetimes.

    A finished (succeeded or cancelled) job keeps no body: its task and arguments are ``None``.
    """

    id: str
    queue: str | None  # None: an unknown job of a handle with no queue (see JobHandle)
    status: str  # one of STATUSES
    task: str | None
    args: tuple[Any, ...] | None
    kwargs: dict[str, Any] | None
    attempts: int  # claims so far (1 while the first attempt runs)
    max_retries: int | None
    due_at: dt.datetime | None  # waiting jobs (Redis: None for a due job behind 10,000 others)
    lease_until: dt.datetime | None  # running jobs
    finished_at: dt.datetime | None  # succeeded, cancelled and dead jobs
    worker: str | None  # running: holds the lease; succeeded: ran it
    last_error: Failure | None  # the last failed attempt's type, message, traceback, reason
    cancel_requested: bool

    @classmethod
    def of(cls, queue: str | None, job_id: str, record: JobRecord | None) -> JobInfo:
        """The info of a job from its broker record (``None``: unknown)."""
        from .job import Job  # the envelope, decoded only when there is one

        job = None
        if record is not None and record.body is not None:
            try:
                job = Job.decode(record.body, job_id, record.queue)
            except DecodeError:
                job = None
        return cls(
            job_id,
            queue,
            status_of(record),
            job.task if job else None,
            job.args if job else None,
            job.kwargs if job else None,
            record.attempt if record else 0,
            job.max_retries if job else None,
            _time(record.due_at_ms if record else None),
            _time(record.lease_until_ms if record else None),
            _time(record.finished_at_ms if record else None),
            record.worker if record else None,
            record.failure if record else None,
            bool(record and record.cancel_requested),
        )


class JobHandle(Generic[R]):
    """A reference to one job; cheap to make, holds no connection of its own.

    ``queue`` is ``None`` on a handle from :meth:`App.job` without a queue whose job was in
    none of :meth:`App.known_queues` when the handle was made: each call looks in all of them
    again, so such a handle finds the job once it is enqueued.
    """

    def __init__(self, app: App, queue: str | None, job_id: str) -> None:
        self.app = app
        self.queue = queue
        self.id = job_id

    def __repr__(self) -> str:
        return f"JobHandle(id={self.id!r}, queue={self.queue!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JobHandle) and (other.queue, other.id) == (self.queue, self.id)

    def __hash__(self) -> int:
        return hash((self.queue, self.id))

    def status(self) -> str:
        """One of ``scheduled``, ``due``, ``running``, ``succeeded``, ``failed`` (a retry is
        pending), ``dead``, ``cancelled`` or ``unknown`` (never existed, or it ended so long ago
        that neither its finished record nor its result is kept)."""
        return status_of(self._find()[1])

    def info(self) -> JobInfo:
        """The job's task, arguments, attempts, times, worker and last error."""
        queue, record = self._find()
        return JobInfo.of(queue, self.id, record)

    def cancel(self) -> bool:
        """Cancel the job: a waiting one is removed at once (status ``cancelled``); a running
        one is asked to stop, which its worker hears at its next lease renewal (within about a
        third of the lease): an ``async`` task is then cancelled, a plain one sees
        ``taskq.current_job().cancelled`` become true. ``False`` if it is not waiting or
        running."""
        queue = self._queue()
        return queue is not None and self.app.inspector.cancel(queue, self.id) is not None

    def result(self, timeout: float | None = None, poll: float = SAFETY_POLL) -> R:
        """Wait for the job to end and return its value, or raise :class:`TaskFailed`.

        Waits for the broker's notice that the job ended (a Redis ``PUBLISH``, an event in
        memory; SQLite, which has no notice across processes, reads ``PRAGMA data_version``
        every 5 ms), reading the state every ``poll`` seconds too in case a notice is lost.
        Raises ``TimeoutError`` after ``timeout`` seconds, :class:`Cancelled` for a cancelled
        job, and :class:`JobNotFound` when the job is unknown or its result expired. A job that
        returned ``None`` (or whose task keeps no results, ``result_ttl=0``) gives ``None``.
        """
        return self._wait(timeout, poll, None)

    async def aresult(self, timeout: float | None = None, poll: float = SAFETY_POLL) -> R:
        """:meth:`result` for asyncio code: waits on a thread, never blocking the event loop;
        cancelling the awaiting task ends that thread's wait within ``poll`` seconds."""
        stop = threading.Event()
        try:
            return await asyncio.to_thread(self._wait, timeout, poll, stop)
        finally:
            stop.set()

    def _queue(self) -> str | None:
        """The job's queue: its own, else the first of the app's that holds it (None: none)."""
        return self.queue if self.queue is not None else find(self.app, self.id)[0]

    def _find(self) -> tuple[str | None, JobRecord | None]:
        """The job's queue and record: in its queue, else in the first of the app's that
        holds it."""
        if self.queue is None:
            return find(self.app, self.id)
        return self.queue, self.app.inspector.get(self.queue, self.id)

    def _unknown(self, queues: Sequence[str]) -> JobNotFound:
        where = ", ".join(map(repr, queues))
        where = f"in queue {where}" if len(queues) == 1 else f"in any of the queues {where}"
        return JobNotFound(
            f"job {self.id} is unknown {where}: never enqueued, or it ended so long ago that "
            "nothing of it is kept"
        )

    def _wait(self, timeout: float | None, poll: float, stop: threading.Event | None) -> R:
        deadline = None if timeout is None else time.monotonic() + timeout
        queue = self._queue()
        if queue is None:
            raise self._unknown(self.app.known_queues())
        # subscribed before the first look, so an end between the two is not missed
        waiter = self.app.inspector.finishes(queue, self.id)
        try:
            while True:
                done, value = self._poll(queue)
                if done:
                    return value  # type: ignore[no-any-return]
                left = poll if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"job {self.id} did not finish within {timeout}s")
                if stop is not None and stop.is_set():
                    raise asyncio.CancelledError
                waiter.wait(min(left, poll))
        finally:
            waiter.close()

    def _poll(self, queue: str) -> tuple[bool, Any]:
        record = self.app.inspector.get(queue, self.id)
        if record is None:
            raise self._unknown([queue])
        if record.state == "succeeded":
            if record.result is not None:
                return True, unpackb(record.result)
            if record.result_kept:
                raise JobNotFound(f"job {self.id} succeeded, but its result has expired")
            return True, None
        if record.state == "cancelled":
            raise Cancelled(f"job {self.id} was cancelled")
        if record.state == "dead":
            failure = record.failure
            if failure is None:
                raise TaskFailed(self.id, "Dead", "dead with no recorded failure")
            raise TaskFailed(self.id, failure.error_type, failure.message, failure.traceback)
        return False, None
