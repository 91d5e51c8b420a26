"""The one exception tree every taskq error belongs to.

::

    TaskqError
     ├── ConfigError            bad URL, bad environment value, bad ``module:app``
     ├── BrokerError            the broker refused or failed an operation
     │    └── BrokerUnavailable  not reachable after bounded retries
     ├── EnqueueError           arguments that do not bind, do not encode, or are too large
     ├── TaskFailed             from ``JobHandle.result()``: remote error type, message, traceback
     ├── JobNotFound            no job with that id (never existed, or its record expired)
     ├── Cancelled              the job was cancelled before it produced a result
     └── Retry                  raised *by a task* to ask for another attempt (after ``delay``)
"""

from __future__ import annotations


class TaskqError(Exception):
    """Base class of every error taskq raises."""


class ConfigError(TaskqError):
    """A setting, URL, environment value or ``module:app`` reference is wrong."""


class BrokerError(TaskqError):
    """The broker failed an operation."""


class BrokerUnavailable(BrokerError):
    """The broker could not be reached after bounded retries."""


class EnqueueError(TaskqError):
    """A job was refused at the call site; nothing was written."""


class JobNotFound(TaskqError):
    """No job with that id exists (or its record has expired)."""


class Cancelled(TaskqError):
    """The job was cancelled before it produced a result."""


class TaskFailed(TaskqError):
    """A job ended without a result; carries the remote error's type, message and traceback."""

    def __init__(self, job_id: str, error_type: str, message: str, traceback: str = "") -> None:
        super().__init__(f"job {job_id} failed: {error_type}: {message}")
        self.job_id = job_id
        self.error_type = error_type
        self.message = message
        self.traceback = traceback


class Retry(TaskqError):
    """Raise from a task to ask for another attempt, after ``delay`` seconds if given."""

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        super().__init__(reason or (f"retry requested in {delay}s" if delay else "retry requested"))
        if delay is not None and not (0 <= delay < float("inf")):
            raise ValueError(f"Retry delay must be a finite number >= 0, got {delay!r}")
        self.delay = delay
