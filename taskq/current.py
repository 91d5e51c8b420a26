"""``taskq.current_job()``: the job the calling code runs in, set by the worker in a contextvar."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field


class CancelFlag:
    """Set once, when a cancel of the job is requested; read from any thread.

    A plain attribute, not a ``threading.Event``: nothing waits on it, and an Event (a lock and
    a condition) cost the worker a few microseconds per job.
    """

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@dataclass(frozen=True)
class CurrentJob:
    """The running job as its task sees it; ``cancelled`` turns true when a cancel is requested.

    A plain (sync) task cannot be interrupted: it should look at ``cancelled`` between steps
    and stop (return, or raise :class:`taskq.Cancelled`) when it is true.
    """

    id: str
    task: str
    queue: str
    attempt: int  # 1 on the first attempt
    _cancel: CancelFlag = field(default_factory=CancelFlag, repr=False, compare=False)

    @property
    def cancelled(self) -> bool:
        """Whether someone asked to cancel this job (heard at the worker's last lease renewal)."""
        return self._cancel.is_set()

    def request_cancel(self) -> None:
        """Mark the job cancelled (the worker calls this when its broker reports a cancel)."""
        self._cancel.set()


CURRENT: ContextVar[CurrentJob | None] = ContextVar("taskq_current_job", default=None)


def current_job() -> CurrentJob:
    """The job the calling code runs in; ``RuntimeError`` outside a task run by a worker."""
    job = CURRENT.get()
    if job is None:
        raise RuntimeError("taskq.current_job() is only available inside a task a worker runs")
    return job
