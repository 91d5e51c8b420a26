"""``App``: the task registry, its settings, and the broker it opens on first use."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast, overload

from typing_extensions import ParamSpec

from .brokers import Retention, open_broker
from .brokers.base import Broker, EnqueueItem, Inspector
from .config import Settings, environment, mask_url
from .errors import ConfigError, EnqueueError
from .handle import JobHandle, find
from .job import DEFAULT_MAX_SIZE
from .options import DEFAULT_QUEUE, DEFAULT_RESULT_TTL, TaskOptions
from .retry import Backoff, BackoffPolicy
from .task import AnyTask, AsyncTask, BaseTask, Task

P = ParamSpec("P")
R = TypeVar("R")


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` returns: a decorator keeping the function's types."""

    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> AsyncTask[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R]) -> Task[P, R]: ...


class App:
    """A set of tasks and the broker their jobs go through.

    ``url`` picks the broker (``redis://``, ``rediss://``, ``sqlite:///path``, ``memory://``);
    without one, ``TASKQ_URL``, ``REDIS_URL`` or ``REDIS_ADDR`` (+ ``REDIS_DB``) from the
    environment or a ``.env`` file, else the embedded SQLite file ``taskq.db``. ``clock`` is the
    local clock: it stamps jobs and decides due times and leases on the embedded brokers (Redis
    decides with its own server clock).
    """

    def __init__(
        self,
        url: str | None = None,
        namespace: str = "taskq",
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        retention: Retention | None = None,
        max_job_size: int = DEFAULT_MAX_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = Settings.from_env(environment(env, cwd))
        if url is not None:
            settings = Settings(
                url, settings.poll_interval, settings.job_delay, settings.max_retries
            )
        if not namespace or any(c in namespace for c in "{}: "):
            raise ConfigError(
                f"namespace {namespace!r} must be non-empty text without {{}}: or spaces"
            )
        self.settings = settings
        self.namespace = namespace
        self.retention = retention or Retention()
        self.max_job_size = max_job_size
        self.clock = clock
        self.tasks: dict[str, AnyTask] = {}
        self._broker: Broker | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"App({mask_url(self.settings.url)!r}, namespace={self.namespace!r})"

    # -- registry ------------------------------------------------------------------------------

    @overload
    def task(  # type: ignore[overload-overlap]
        self, fn: Callable[P, Coroutine[Any, Any, R]]
    ) -> AsyncTask[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R]) -> Task[P, R]: ...

    @overload
    def task(
        self,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_retries: int | None = None,
        backoff: BackoffPolicy = Backoff(),
        timeout: float | None = None,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        no_retry_on: tuple[type[BaseException], ...] = (),
        result_ttl: float = DEFAULT_RESULT_TTL,
        store_none: bool = False,
        max_crashes: int = 3,
    ) -> TaskDecorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_retries: int | None = None,
        backoff: BackoffPolicy = Backoff(),
        timeout: float | None = None,
        retry_on: tuple[type[BaseException], ...] = (Exception,),
        no_retry_on: tuple[type[BaseException], ...] = (),
        result_ttl: float = DEFAULT_RESULT_TTL,
        store_none: bool = False,
        max_crashes: int = 3,
    ) -> Any:
        """Register a function as a task: ``@app.task`` or ``@app.task(max_retries=5, ...)``.

        ``name`` defaults to the function's qualified name (what follows ``<locals>`` for a
        function defined in a function); ``backoff`` is a :class:`Backoff` or
        ``attempt -> seconds``; ``timeout`` bounds one attempt (seconds); ``retry_on`` /
        ``no_retry_on`` filter which exceptions are retried; ``result_ttl`` is how long a result
        is kept (seconds, 0 keeps none); a ``None`` result is stored only with ``store_none=True``
        (else ``result()`` answers ``None`` from the job's finished record while the broker keeps
        it, see :class:`Retention`); ``max_crashes`` is how many lost leases (a worker died
        mid-job) a job survives before it is buried.
        """

        def decorate(fn: Callable[..., Any]) -> AnyTask:
            if not callable(fn):
                raise TypeError(f"@app.task decorates a function, got {fn!r}")
            qualname = getattr(fn, "__qualname__", None) or repr(fn)
            task_name = name or qualname.rsplit(".<locals>.", 1)[-1]
            options = TaskOptions(
                task_name,
                queue,
                max_retries,
                backoff,
                timeout,
                retry_on,
                no_retry_on,
                result_ttl,
                max_crashes,
                store_none,
            )
            return self._register(fn, options)

        return decorate if fn is None else decorate(fn)

    def _register(self, fn: Callable[..., Any], options: TaskOptions) -> AnyTask:
        if options.name in self.tasks:
            raise ConfigError(
                f"task name {options.name!r} is already registered; pass name=... to tell them "
                "apart"
            )
        cls = AsyncTask if _is_async(fn) else Task
        task: AnyTask = cls(self, fn, options)
        self.tasks[task.name] = task
        return task

    def max_retries_for(self, options: TaskOptions) -> int:
        """A task's retry limit: its own, else ``JOB_MAX_RETRY``, else 3."""
        return self.settings.max_retries if options.max_retries is None else options.max_retries

    # -- broker --------------------------------------------------------------------------------

    @property
    def broker(self) -> Broker:
        """The broker, opened on first use (so importing a module of tasks never connects)."""
        if self._broker is None:
            with self._lock:
                if self._broker is None:
                    self._broker = open_broker(
                        self.settings.url, self.namespace, self.retention, self.clock
                    )
        return self._broker

    @property
    def inspector(self) -> Inspector:
        """The broker's inspection side: counts, jobs, dead letters, workers."""
        return cast(Inspector, self.broker)

    def submit(self, items: Sequence[EnqueueItem]) -> list[bool]:
        """Write encoded jobs; ``False`` for a job id already waiting or running."""
        return self.broker.enqueue(items)

    def enqueue_many(
        self, calls: Sequence[tuple[BaseTask[Any, Any], Sequence[Any], Mapping[str, Any]]]
    ) -> list[JobHandle[Any]]:
        """Enqueue ``(task, args, kwargs)`` calls of any tasks in one batch, due now."""
        items = [task._item(tuple(args), dict(kwargs), 0, None) for task, args, kwargs in calls]
        self.submit(items)
        return [JobHandle(self, item.queue, item.job_id) for item in items]

    def job(self, job_id: str, queue: str | None = None) -> JobHandle[Any]:
        """A handle on an existing job, by its id.

        Without ``queue``, the job is looked for in :meth:`known_queues` now (one read per
        queue; give ``queue`` to skip that, and for a queue no task of the app uses); if none
        holds it, the handle's ``queue`` is ``None`` and each of its calls looks again.
        """
        if queue is None:
            queue, _ = find(self, job_id)
        return JobHandle(self, queue, job_id)

    def known_queues(self) -> list[str]:
        """``default`` and the queues of the app's tasks: where :meth:`job` looks for a job."""
        return list(dict.fromkeys([DEFAULT_QUEUE, *(t.options.queue for t in self.tasks.values())]))

    def task_named(self, name: str) -> AnyTask:
        """The registered task called ``name``; :class:`EnqueueError` if there is none."""
        try:
            return self.tasks[name]
        except KeyError:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise EnqueueError(f"no task named {name!r} (registered: {known})") from None

    def close(self) -> None:
        """Close the broker connection, if one was opened."""
        with self._lock:
            if self._broker is not None:
                self._broker.close()
                self._broker = None


def _is_async(fn: Callable[..., Any]) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)
