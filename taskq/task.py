"""The typed task wrapper: ``delay``/``delay_by``/``delay_at`` checked against the function."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from typing_extensions import ParamSpec

from .brokers.base import EnqueueItem
from .config import check_delay
from .errors import EnqueueError
from .handle import JobHandle
from .job import Job, new_job_id
from .options import CallOptions, TaskOptions

if TYPE_CHECKING:
    from .app import App

P = ParamSpec("P")
R = TypeVar("R")

Delay = float | dt.timedelta


def delay_seconds(delay: Delay) -> float:
    """Seconds in a delay given as a number or a ``timedelta``; ``ValueError`` if negative/NaN."""
    if isinstance(delay, dt.timedelta):
        delay = delay.total_seconds()
    return check_delay(delay)


def due_at_ms(when: dt.datetime) -> int:
    """Milliseconds since the epoch of ``when`` (a naive datetime is taken as local time)."""
    if not isinstance(when, dt.datetime):
        raise TypeError(f"delay_at takes a datetime, got {when!r}")
    return int(when.timestamp() * 1000)


class Enqueuer(Generic[P, R]):
    """The enqueue methods shared by a task and its ``with_options`` view."""

    def __init__(self, task: BaseTask[P, R], call: CallOptions) -> None:
        self._task = task
        self._call = call

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Enqueue a call due now."""
        return self._submit(self._item(args, kwargs, 0, None))

    def delay_by(self, delay: Delay, /, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Enqueue a call due ``delay`` seconds (or a ``timedelta``) from now (broker's clock)."""
        return self._submit(self._item(args, kwargs, round(delay_seconds(delay) * 1000), None))

    def delay_at(self, when: dt.datetime, /, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """Enqueue a call due at ``when``."""
        return self._submit(self._item(args, kwargs, 0, due_at_ms(when)))

    async def adelay(self, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """:meth:`delay` for asyncio code; the broker call runs off the event loop."""
        item = self._item(args, kwargs, 0, None)
        return await asyncio.to_thread(self._submit, item)

    async def adelay_by(self, delay: Delay, /, *args: P.args, **kwargs: P.kwargs) -> JobHandle[R]:
        """:meth:`delay_by` for asyncio code."""
        item = self._item(args, kwargs, round(delay_seconds(delay) * 1000), None)
        return await asyncio.to_thread(self._submit, item)

    async def adelay_at(
        self, when: dt.datetime, /, *args: P.args, **kwargs: P.kwargs
    ) -> JobHandle[R]:
        """:meth:`delay_at` for asyncio code."""
        item = self._item(args, kwargs, 0, due_at_ms(when))
        return await asyncio.to_thread(self._submit, item)

    def delay_many(
        self,
        calls: Iterable[tuple[Sequence[Any], Mapping[str, Any]]],
        delay: Delay = 0,
    ) -> list[JobHandle[R]]:
        """Enqueue many ``(args, kwargs)`` calls in one batch; each is checked like :meth:`delay`.

        If any call is refused, nothing is written.
        """
        delay_ms = round(delay_seconds(delay) * 1000)
        items = [self._item(tuple(a), dict(k), delay_ms, None) for a, k in calls]
        app = self._task.app
        app.submit(items)
        return [JobHandle(app, item.queue, item.job_id) for item in items]

    def _item(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], delay_ms: int, at_ms: int | None
    ) -> EnqueueItem:
        task = self._task
        arity = task.arity
        # positional arguments alone, as many as a plain signature takes, always bind: binding
        # is a tenth of the producer's CPU per job in a bulk enqueue
        if kwargs or arity is None or not arity[0] <= len(args) <= arity[1]:
            try:
                task.signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise EnqueueError(f"task {task.name!r}: {exc}") from None
        call = self._call
        queue = call.queue or task.options.queue
        max_retries = call.max_retries
        if max_retries is None:
            max_retries = task.app.max_retries_for(task.options)
        job = Job(
            id=call.job_id or new_job_id(),
            task=task.name,
            args=args,
            kwargs=kwargs,
            queue=queue,
            max_retries=max_retries,
            enqueued_at=int(task.app.clock() * 1000),
        )
        body = job.encode(task.app.max_job_size)
        return EnqueueItem(queue, job.id, body, delay_ms, at_ms)

    def _submit(self, item: EnqueueItem) -> JobHandle[R]:
        app = self._task.app
        app.submit([item])
        return JobHandle(app, item.queue, item.job_id)


class BaseTask(Enqueuer[P, R]):
    """A registered function: enqueue with ``delay*``; per-call options via ``with_options``."""

    def __init__(self, app: App, fn: Callable[P, Any], options: TaskOptions) -> None:
        super().__init__(self, CallOptions())
        self.app = app
        self.fn = fn
        self.options = options
        self.name = options.name
        self.signature = inspect.signature(fn)
        self.arity = _arity(self.signature)
        self.is_async = inspect.iscoroutinefunction(fn)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<task {self.name} queue={self.options.queue}>"

    def with_options(
        self,
        *,
        job_id: str | None = None,
        queue: str | None = None,
        max_retries: int | None = None,
    ) -> Enqueuer[P, R]:
        """The same enqueue methods with a job id, queue or retry limit.

        A ``job_id`` makes enqueue idempotent within its queue: while a job with that id waits or
        runs there, another enqueue writes nothing and returns its handle. Once the job ended
        (succeeded, cancelled or dead), the id may be used again; a dead job's record is then
        replaced by the new job.
        """
        return Enqueuer(self, CallOptions(job_id, queue, max_retries))


class Task(BaseTask[P, R]):
    """A task wrapping a plain function; calling it runs the function here and now."""

    fn: Callable[P, R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)


class AsyncTask(BaseTask[P, R]):
    """A task wrapping an ``async def`` function; calling it returns the coroutine to await."""

    fn: Callable[P, Coroutine[Any, Any, R]]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return self.fn(*args, **kwargs)


def _arity(signature: inspect.Signature) -> tuple[int, int] | None:
    """(required, most) positional arguments of a signature with no ``*args``, ``**kwargs`` or
    keyword-only parameters; ``None`` for any other signature."""
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    params = list(signature.parameters.values())
    if any(p.kind not in positional for p in params):
        return None
    required = sum(1 for p in params if p.default is inspect.Parameter.empty)
    return required, len(params)


AnyTask = BaseTask[..., Any]
TaskFunction = Callable[P, Awaitable[R]] | Callable[P, R]
