"""``JobHandle``: a job's id, and its status, details, result and cancellation."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
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
    """The status a handle reports for what the broker knows of a job."""
    if record is None:
        return "unknown"
    if record.state in ("scheduled", "due") and record.failure is not None:
        return "failed"
    return record.state


def _time(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)


@dataclass(frozen=True)
class JobInfo:
    """What :meth:`JobHandle.info` reports; times are UTC datetimes.

    A finished (succeeded or cancelled) job keeps no body: its task and arguments are ``None``.
    """

    id: str
    queue: str
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
    def of(cls, queue: str, job_id: str, record: JobRecord | None) -> JobInfo:
        """The info of a job from its broker record (``None``: unknown)."""
        from .job import Job  # the envelope, decoded only when there is one

        job = None
        if record is not None and record.body is not None:
            try:
                job = Job.decode(record.body, job_id, queue)
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
    """A reference to one job; cheap to make, holds no connection of its own."""

    def __init__(self, app: App, queue: str, job_id: str) -> None:
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
        return status_of(self.app.inspector.get(self.queue, self.id))

    def info(self) -> JobInfo:
        """The job's task, arguments, attempts, times, worker and last error."""
        return JobInfo.of(self.queue, self.id, self.app.inspector.get(self.queue, self.id))

    def cancel(self) -> bool:
        """Cancel the job: a waiting one is removed at once (status ``cancelled``); a running
        one is asked to stop, which its worker hears at its next lease renewal (within about a
        third of the lease): an ``async`` task is then cancelled, a plain one sees
        ``taskq.current_job().cancelled`` become true. ``False`` if it is not waiting or
        running."""
        return self.app.inspector.cancel(self.queue, self.id) is not None

    def result(self, timeout: float | None = None, poll: float = SAFETY_POLL) -> R:
        """Wait for the job to end and return its value, or raise :class:`TaskFailed`.

        Blocks on the broker's notice that the job ended (no busy polling; the state is also
        read every ``poll`` seconds in case a notice is lost). Raises ``TimeoutError`` after
        ``timeout`` seconds, :class:`Cancelled` for a cancelled job, and :class:`JobNotFound`
        when the job is unknown or its result expired. A job that returned ``None`` (or whose
        task keeps no results, ``result_ttl=0``) gives ``None``.
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

    def _wait(self, timeout: float | None, poll: float, stop: threading.Event | None) -> R:
        deadline = None if timeout is None else time.monotonic() + timeout
        # subscribed before the first look, so an end between the two is not missed
        waiter = self.app.inspector.finishes(self.queue, self.id)
        try:
            while True:
                done, value = self._poll()
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

    def _poll(self) -> tuple[bool, Any]:
        record = self.app.inspector.get(self.queue, self.id)
        if record is None:
            raise JobNotFound(
                f"job {self.id} in queue {self.queue!r} is unknown: never enqueued, or it ended "
                "so long ago that nothing of it is kept"
            )
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
