"""taskq: typed Python tasks with delays, retries and leases, on Redis or an embedded broker."""

from .app import App
from .brokers import Retention
from .current import CurrentJob, current_job
from .errors import (
    BrokerError,
    BrokerUnavailable,
    Cancelled,
    ConfigError,
    EnqueueError,
    JobNotFound,
    Retry,
    TaskFailed,
    TaskqError,
)
from .handle import JobHandle, JobInfo
from .retry import Backoff
from .task import AsyncTask, Task

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncTask",
    "Backoff",
    "BrokerError",
    "BrokerUnavailable",
    "Cancelled",
    "ConfigError",
    "CurrentJob",
    "EnqueueError",
    "JobHandle",
    "JobInfo",
    "JobNotFound",
    "Retention",
    "Retry",
    "Task",
    "TaskFailed",
    "TaskqError",
    "__version__",
    "current_job",
]
