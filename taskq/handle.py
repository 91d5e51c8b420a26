"""``JobHandle``: a job's id, and its status, result and cancellation."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import Cancelled, JobNotFound, TaskFailed
from .serialization import unpackb

if TYPE_CHECKING:
    from .app import App

R = TypeVar("R")

STATUSES = ("scheduled", "due", "running", "succeeded", "failed", "dead", "unknown")


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
        pending), ``dead`` or ``unknown`` (never existed, cancelled, or finished with no result
        kept)."""
        record = self.app.inspector.get(self.queue, self.id)
        if record is None:
            return "unknown"
        if record.state in ("scheduled", "due") and record.failure is not None:
            return "failed"
        return record.state

    def cancel(self) -> bool:
        """Remove the job if it is still waiting; ``False`` if it already started or ended."""
        return self.app.inspector.cancel(self.queue, self.id)

    def result(self, timeout: float | None = None, poll: float = 0.2) -> R:
        """Wait for the job to end and return its value, or raise :class:`TaskFailed`.

        Raises ``TimeoutError`` after ``timeout`` seconds, and :class:`JobNotFound` when the job
        is unknown (cancelled, expired, or finished without keeping a result).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.005
        while True:
            done, value = self._poll()
            if done:
                return value  # type: ignore[no-any-return]
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} did not finish within {timeout}s")
            left = poll if deadline is None else max(0.0, deadline - time.monotonic())
            time.sleep(min(pause, left))
            pause = min(pause * 2, poll)

    async def aresult(self, timeout: float | None = None, poll: float = 0.2) -> R:
        """:meth:`result` for asyncio code; does not block the event loop."""
        return await asyncio.to_thread(self.result, timeout, poll)

    def _poll(self) -> tuple[bool, Any]:
        record = self.app.inspector.get(self.queue, self.id)
        if record is None:
            raise JobNotFound(
                f"job {self.id} in queue {self.queue!r} is unknown: never enqueued, cancelled, "
                "or finished without a kept result"
            )
        if record.state == "succeeded":
            return True, unpackb(record.result) if record.result else None
        if record.state == "dead":
            failure = record.failure
            if failure is None:
                raise Cancelled(f"job {self.id} is dead with no recorded failure")
            raise TaskFailed(self.id, failure.error_type, failure.message, failure.traceback)
        return False, None
