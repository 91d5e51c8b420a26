"""The worker: runs an app's tasks from its broker."""

from .options import WorkerOptions
from .runner import Worker

__all__ = ["Worker", "WorkerOptions"]
