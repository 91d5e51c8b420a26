"""Run one claimed job and turn what happened into the broker call that records it."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from ..app import App
from ..brokers.base import Ack, Bury, Claimed, Failure, RetryLater
from ..current import CURRENT, CancelFlag, CurrentJob
from ..job import Job
from ..retry import decide
from ..serialization import DecodeError, packb
from ..task import AnyTask
from .logs import emit, event, log
from .threads import TaskThreads

Outcome = Ack | RetryLater | Bury


@dataclass
class Attempt:
    """One claimed job in this worker's hands."""

    claimed: Claimed
    started: float = field(default_factory=time.monotonic)
    job: Job | None = None
    lost: bool = False  # its lease was lost: whatever it returns is not ours to record
    # set when a lease renewal reports a cancel request; the task sees it as current_job()
    cancel: CancelFlag = field(default_factory=CancelFlag)
    # taken by whichever ends the attempt first: its call returning, or its timeout
    _end: threading.Lock = field(default_factory=threading.Lock, repr=False)
    ran_for: float | None = None  # seconds a plain task's call took, once it returned

    def elapsed_ms(self) -> float:
        """How long the attempt ran (so far), in milliseconds."""
        ran_for = time.monotonic() - self.started if self.ran_for is None else self.ran_for
        return ran_for * 1000

    def finish(self) -> bool:
        """Mark the attempt ended; ``False`` if it already was (only the first end counts)."""
        return self._end.acquire(blocking=False)


def failure_of(exc: BaseException, reason: str = "failed") -> Failure:
    """The stored form of an exception: its type, message and traceback text."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Failure(type(exc).__qualname__, str(exc), text, reason)


def _bury(attempt: Attempt, reason: str, message: str, error_type: str = "") -> Bury:
    claimed = attempt.claimed
    event(
        logging.ERROR,
        "dead",
        "dead %s: %s",
        claimed.job_id,
        message,
        job_id=claimed.job_id,
        queue=claimed.queue,
        reason=reason,
    )
    return Bury(claimed.lease, Failure(error_type or reason, message, "", reason))


def admit(app: App, attempt: Attempt) -> tuple[Job, AnyTask] | Bury:
    """Decode the job and find its task, or say why it goes straight to the dead-letter store."""
    claimed = attempt.claimed
    try:
        job = Job.decode(claimed.body, claimed.job_id, claimed.queue)
    except DecodeError as exc:
        message = f"{exc}; its {len(claimed.body)} bytes are kept"
        return _bury(attempt, "undecodable", message, type(exc).__name__)
    attempt.job = job
    task = app.tasks.get(job.task)
    if task is None:
        return _bury(attempt, "unknown-task", f"no task named {job.task!r} in this worker")
    if claimed.crashes >= task.options.max_crashes:
        message = f"{job.task}: its worker was lost {claimed.crashes} times (max_crashes)"
        return _bury(attempt, "crashed", message)
    return job, task


def _fields(job: Job, attempt: Attempt) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "task": job.task,
        "queue": job.queue,
        "attempt": attempt.claimed.attempt,
    }


def _job_event(
    level: int, name: str, job: Job, attempt: Attempt, message: str, *args: object, **extra: Any
) -> None:
    """Log an event of this attempt with the job's fields, built only when ``level`` is on."""
    if log.isEnabledFor(level):
        fields = _fields(job, attempt)
        fields.update(extra)
        emit(level, name, message, args, fields)


def begin(job: Job, attempt: Attempt) -> CurrentJob:
    """Log the start of an attempt (at DEBUG: INFO has one line per outcome) and return what
    ``current_job()`` answers inside it."""
    claimed = attempt.claimed
    _job_event(
        logging.DEBUG,
        "started",
        job,
        attempt,
        "started %s %s (attempt %d/%d)",
        job.task,
        job.id,
        claimed.attempt,
        job.max_retries + 1,
    )
    return CurrentJob(job.id, job.task, job.queue, claimed.attempt, attempt.cancel)


def sync_context(job: Job, attempt: Attempt) -> contextvars.Context:
    """Begin an attempt of a plain task: the context its thread runs the call in."""
    context = contextvars.copy_context()
    context.run(CURRENT.set, begin(job, attempt))
    return context


def call_sync(task: AnyTask, job: Job, attempt: Attempt) -> tuple[bool, Any]:
    """On a task thread: run a plain task's attempt; ``(True, what it returned)`` or
    ``(False, what it raised)``."""
    context = sync_context(job, attempt)
    try:
        return True, context.run(task.fn, *job.args, **job.kwargs)
    except BaseException as exc:  # a task's failure is data, whatever it is
        return False, exc
    finally:
        attempt.ran_for = time.monotonic() - attempt.started


def settle(task: AnyTask, job: Job, attempt: Attempt, ok: bool, value: Any) -> Outcome | None:
    """What an ended attempt comes to (see :func:`conclude`), or ``None``: its lease was lost
    meanwhile, or deciding raised (that error is logged). ``KeyboardInterrupt`` and
    ``SystemExit`` raised by the task are raised again."""
    if attempt.lost:
        return None
    try:
        return conclude(task, job, attempt, ok, value)
    except Exception:
        log.exception("deciding the outcome of job %s failed (it runs again later)", job.id)
        return None


async def run_attempt(task: AnyTask, job: Job, attempt: Attempt, threads: TaskThreads) -> Outcome:
    """Run the task once and decide: ack with the result, retry later, or bury."""
    if task.is_async:
        ok, value = await call_async(task, job, attempt)
    else:
        ok, value = await _call_on_thread(task, job, attempt, threads)
    outcome = settle(task, job, attempt, ok, value)
    if outcome is None:
        raise RuntimeError(f"job {job.id}: its lease was lost, or deciding its outcome failed")
    return outcome


async def call_async(task: AnyTask, job: Job, attempt: Attempt) -> tuple[bool, Any]:
    """Run an async task's attempt (within its timeout); ``(True, what it returned)`` or
    ``(False, what it raised)``. A cancel of the awaiting asyncio task is raised."""
    timeout = task.options.timeout
    # set in this job's own asyncio task, so only its coroutine sees it
    token = CURRENT.set(begin(job, attempt))
    try:
        call = task.fn(*job.args, **job.kwargs)
        return True, await (call if timeout is None else asyncio.wait_for(call, timeout))
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # a task's failure is data, whatever it is
        return False, exc
    finally:
        CURRENT.reset(token)
        attempt.ran_for = time.monotonic() - attempt.started


async def _call_on_thread(
    task: AnyTask, job: Job, attempt: Attempt, threads: TaskThreads
) -> tuple[bool, Any]:
    """Run a plain task's attempt on a task thread and await its end, or its timeout (the
    thread runs on then: it cannot be stopped)."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[tuple[bool, Any]] = loop.create_future()

    def deliver(result: tuple[bool, Any]) -> None:
        if not ended.done():  # an awaiting caller that was cancelled takes nothing
            ended.set_result(result)

    def call() -> None:
        result = call_sync(task, job, attempt)
        if attempt.finish():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits it
                loop.call_soon_threadsafe(deliver, result)

    threads.submit(call)
    try:
        return await asyncio.wait_for(asyncio.shield(ended), task.options.timeout)
    except asyncio.TimeoutError:  # on Python 3.10 it is not the builtin TimeoutError
        if attempt.finish():
            return False, TimeoutError()
        return await ended  # the call ended just as its timeout came


def conclude(task: AnyTask, job: Job, attempt: Attempt, ok: bool, value: Any) -> Outcome:
    """Decide what an attempt's call returned (``ok``) or raised comes to: ack with the result,
    retry later, or bury."""
    if ok:
        # None is stored only if asked: the broker's finished record says the job succeeded,
        # and handle.result() answers None from it; result_ttl=0 is how a task keeps nothing
        options = task.options
        keep = options.result_ttl > 0 and (value is not None or options.store_none)
        try:
            encoded = packb(value) if keep else None
        except Exception as exc:  # a result msgpack cannot carry fails the attempt
            return conclude(task, job, attempt, False, exc)
        elapsed = attempt.elapsed_ms()
        _job_event(
            logging.INFO,
            "executed",
            job,
            attempt,
            "executed %s %s in %.1fms",
            job.task,
            job.id,
            elapsed,
            duration_ms=round(elapsed, 3),
        )
        return Ack(attempt.claimed.lease, encoded, int(options.result_ttl * 1000))
    if isinstance(value, (KeyboardInterrupt, SystemExit)):
        raise value
    if attempt.cancel.is_set():
        return cancelled(attempt, f"{type(value).__qualname__}: {value}")
    return _failed(task, job, attempt, value, _fields(job, attempt))


def cancelled(attempt: Attempt, how: str) -> RetryLater:
    """The outcome of a job stopped after a cancel request: a retry the broker turns into the
    end of the job (state ``cancelled``), since a cancel was requested for it."""
    claimed = attempt.claimed
    event(
        logging.INFO,
        "cancelled",
        "cancelled %s (%s)",
        claimed.job_id,
        how,
        job_id=claimed.job_id,
        queue=claimed.queue,
    )
    return RetryLater(claimed.lease, 0)


def handed_back(attempt: Attempt, wait_ms: int = 0) -> RetryLater:
    """The outcome of an attempt a stopping worker gives up unfinished or unstarted: due again
    after ``wait_ms``, its attempt not counted."""
    return RetryLater(attempt.claimed.lease, wait_ms, count_attempt=False)


def _failed(
    task: AnyTask, job: Job, attempt: Attempt, exc: BaseException, fields: dict[str, Any]
) -> Outcome:
    claimed = attempt.claimed
    options = task.options
    # asyncio.TimeoutError (what wait_for raises) is not the builtin TimeoutError on Python 3.10
    timed_out = isinstance(exc, (TimeoutError, asyncio.TimeoutError))
    if timed_out and options.timeout is not None and not str(exc):
        exc = TimeoutError(f"attempt ran over its timeout of {options.timeout}s")
    decision = decide(
        exc,
        claimed.attempt,
        job.max_retries,
        options.backoff,
        options.retry_on,
        options.no_retry_on,
    )
    elapsed = attempt.elapsed_ms()
    error = f"{type(exc).__qualname__}: {exc}"
    left = max(job.max_retries - claimed.attempt + 1, 0)
    # an exception retry_on / no_retry_on rules out is not retried, whatever retries are left
    retries = f"retries left={left}" if decision.retry or left == 0 else "not retried"
    event(
        logging.WARNING,
        "failed",
        "failed %s %s in %.1fms: %s (%s)",
        job.task,
        job.id,
        elapsed,
        error,
        retries,
        duration_ms=round(elapsed, 3),
        error=error,
        **fields,
    )
    if decision.retry:
        event(
            logging.INFO,
            "retrying",
            "retrying %s %s in %.1fs (retries left=%d)",
            job.task,
            job.id,
            decision.delay,
            left - 1,
            delay_s=round(decision.delay, 3),
            **fields,
        )
        delay_ms = round(decision.delay * 1000)
        return RetryLater(claimed.lease, delay_ms, failure_of(exc))
    reason = "exhausted" if claimed.attempt > job.max_retries else "not-retried"
    event(
        logging.ERROR,
        "exhausted",
        "%s %s %s after %d attempt(s) → dead: %s",
        reason,
        job.task,
        job.id,
        claimed.attempt,
        error,
        error=error,
        reason=reason,
        **fields,
    )
    return Bury(claimed.lease, failure_of(exc, reason))
