"""Per-task settings (``@app.task(...)``) and per-call ones (``task.with_options(...)``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .retry import Backoff, BackoffPolicy

DEFAULT_QUEUE = "default"
DEFAULT_RESULT_TTL = 24 * 3600.0


@dataclass(frozen=True)
class TaskOptions:
    """How a task is queued, retried, timed out and how long its results are kept."""

    name: str
    queue: str = DEFAULT_QUEUE
    max_retries: int | None = None  # None: the app's default (JOB_MAX_RETRY, else 3)
    backoff: BackoffPolicy = field(default_factory=Backoff)
    timeout: float | None = None  # seconds an attempt may run; None = no limit
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    no_retry_on: tuple[type[BaseException], ...] = ()
    result_ttl: float = DEFAULT_RESULT_TTL  # seconds a result is kept; 0 keeps none
    max_crashes: int = 3  # lost leases (worker died mid-job) before the job is buried
    store_none: bool = False  # store a None result too (else only the finished record says so)

    def __post_init__(self) -> None:
        check_queue(self.queue)
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.timeout is not None and not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        if self.result_ttl < 0 or self.max_crashes < 1:
            raise ValueError("result_ttl must be >= 0 and max_crashes >= 1")


@dataclass(frozen=True)
class CallOptions:
    """Options of one enqueue, set with ``task.with_options(...)``; ``None`` keeps the task's."""

    job_id: str | None = None
    queue: str | None = None
    max_retries: int | None = None

    def __post_init__(self) -> None:
        if self.queue is not None:
            check_queue(self.queue)
        if self.job_id is not None and not (0 < len(self.job_id) <= 200):
            raise ValueError("job_id must be 1 to 200 characters")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")


def check_queue(queue: str) -> None:
    """Queue names go into Redis keys between braces, so they must be plain text."""
    if not queue or len(queue) > 100 or any(c in queue for c in "{}:, \t\r\n"):
        raise ValueError(
            f"queue name {queue!r} must be 1 to 100 characters without braces, colons, commas "
            "or spaces"
        )
