"""The worker: claims due jobs into free slots, runs them, records outcomes, stops gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from ..app import App
from ..brokers.base import Bury, ClaimBatch, Claimed, RetryLater
from ..config import mask_url
from ..errors import BrokerError
from ..job import Job
from ..retry import Backoff
from ..task import AnyTask
from . import outcomes
from .alarm import Alarm
from .checks import warn_about_broker
from .heartbeat import Heartbeat
from .leases import LeaseKeeper
from .logs import log
from .options import WorkerOptions
from .outcome import Attempt, Outcome, admit, cancelled, run_attempt, start_sync
from .threads import TaskThreads

T = TypeVar("T")
FINAL_FLUSH = 10.0  # seconds a stopping worker keeps trying to record outcomes
RECONNECT = Backoff(initial=0.1, factor=2.0, cap=5.0, jitter=0.2)
# A worker waiting for a due time wakes this much before it: the event loop's sleeps end up to
# 1 ms late (epoll counts whole milliseconds), and a claim sent a little early just finds the
# job not yet due and is sent again.
EARLY = 0.0015


class Worker:
    """Runs an app's tasks from the broker until stopped (or, in burst mode, until idle)."""

    def __init__(self, app: App, options: WorkerOptions | None = None) -> None:
        self.app = app
        self.options = options or WorkerOptions()
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.broker = app.broker
        self._io = ThreadPoolExecutor(4, thread_name_prefix="taskq-io")
        self.leases = LeaseKeeper(self.broker, self.options.lease, self.io)
        self._attempts: dict[str, Attempt] = {}
        self._tasks: dict[str, asyncio.Future[None]] = {}  # running attempts, by job id
        self._pending: list[Outcome] = []
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    async def io(self, call: Callable[[], T]) -> T:
        """Run a blocking broker call off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._io, call)

    def stop(self) -> None:
        """Ask for a graceful stop (thread-safe): claim nothing more, let running jobs finish."""
        # set here too: a stop asked before run() has its loop must not be lost
        self._stopping = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._begin_stop)

    def _begin_stop(self) -> None:
        self._stopping = True
        self._alarm.ring()
        self._slot_free.set()

    @property
    def running(self) -> int:
        """How many jobs this worker is running now."""
        return len(self._tasks)

    async def run(self) -> None:
        """Work until :meth:`stop` (or until idle with ``burst``), then shut down gracefully."""
        self._loop = asyncio.get_running_loop()
        self._threads = TaskThreads(self.options.concurrency, self._loop)
        self._alarm = Alarm()
        self._slot_free = asyncio.Event()
        self._flushed = asyncio.Event()
        self._announce()
        # settings that could lose jobs (an evicting Redis) are worth a warning before any work
        await self.io(partial(warn_about_broker, self.broker))
        loop = self._loop
        stop_watch = self.broker.watch(
            self.options.queues,
            lambda ms: self._wake(loop, ms),
        )
        heartbeat = Heartbeat(self)
        helpers = [asyncio.create_task(self.leases.run()), asyncio.create_task(heartbeat.run())]
        try:
            await self._claim_loop()
            await self._drain()
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            stop_watch()
            await heartbeat.forget()
            self._io.shutdown(wait=False)
            # daemon threads: one still running a handed-back sync job ends with the process
            self._threads.stop()
        log.info("worker %s stopped", self.id)

    def _wake(self, loop: asyncio.AbstractEventLoop, delay_ms: int) -> None:
        """Called from the broker's watch thread: a job was enqueued, due in ``delay_ms``."""
        wake_at = time.monotonic() + delay_ms / 1000 - EARLY
        loop.call_soon_threadsafe(self._alarm.ring_at, wake_at)

    def _announce(self) -> None:
        o = self.options
        log.info(
            "worker %s on %s, queues %s, concurrency %d, lease %gs; tasks: %s",
            self.id,
            mask_url(self.broker.url),
            ",".join(o.queues),
            o.concurrency,
            o.lease,
            ", ".join(sorted(self.app.tasks)) or "none",
        )

    async def _claim_loop(self) -> None:
        failures = 0
        lead = 0.0  # seconds the next claim waits on its io thread before it is sent
        o = self.options
        while not self._stopping:
            free = o.concurrency - len(self._tasks)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            sent = time.monotonic() + lead
            try:
                batch = await self.io(partial(self._claim, free, lead))
            except BrokerError as exc:
                failures += 1
                delay = RECONNECT.delay(failures)
                log.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
                self.leases.expire_overdue()
                await self._alarm.sleep(delay)
                continue
            if failures:
                log.info("broker reachable again after %d failed attempt(s)", failures)
                failures = 0
            if self._stopping:  # a stop came while this claim was on its way
                self._hand_back_unstarted(batch.jobs)
                break
            for claimed in batch.jobs:
                self._start(claimed, sent)
            if len(batch.jobs) >= free or batch.next_due_ms == 0:
                continue
            # outcomes not yet written count as work: a retry still pending is not waiting yet
            if o.burst and batch.next_due_ms is None and not self._tasks and not self._pending:
                break
            wait = self._idle_wait(batch.next_due_ms, sent)
            lead = 0.0
            if wait > 0:
                await self._alarm.sleep(wait)
            else:  # due sooner than the event loop can time a sleep: the claim's thread waits
                lead = wait + EARLY  # seconds until due (<= 0: claim at once)

    def _claim(self, free: int, lead: float) -> ClaimBatch:
        """On an io thread: sleep ``lead`` seconds (to the microsecond, unlike the event loop's
        timers), then claim up to ``free`` jobs. A claim never takes a job before it is due, so
        one sent a little early costs a claim, never a job run early."""
        if lead > 0:
            time.sleep(lead)
        o = self.options
        return self.broker.claim(o.queues, free, int(o.lease * 1000), self.id)

    def _idle_wait(self, next_due_ms: float | None, sent: float) -> float:
        """Seconds to sleep after a claim sent at ``sent`` found nothing more due now."""
        if next_due_ms is None:
            return self.options.poll_interval
        # next_due_ms was measured by the broker's clock somewhere between sending the claim
        # and reading its reply: count it from the midpoint, not from now
        elapsed = (time.monotonic() - sent) / 2
        return min(self.options.poll_interval, next_due_ms / 1000 - elapsed - EARLY)

    def _hand_back_unstarted(self, jobs: list[Claimed]) -> None:
        for claimed in jobs:
            self.leases.hold(claimed.lease, time.monotonic(), lambda: None)
            self._record(RetryLater(claimed.lease, 0, count_attempt=False))

    def _start(self, claimed: Claimed, sent: float) -> None:
        job_id = claimed.job_id
        attempt = Attempt(claimed)
        self._attempts[job_id] = attempt
        self.leases.hold(
            claimed.lease, sent, lambda: self._lost(attempt), lambda: self._cancel(attempt)
        )
        admitted = admit(self.app, attempt)
        if isinstance(admitted, Bury):
            self._record(admitted)
            return
        job, task = admitted
        if task.is_async:
            self._tasks[job_id] = asyncio.create_task(self._work(attempt, job, task))
        else:  # no asyncio task per job: the thread's callback (or the timeout's) ends it
            on_end = partial(self._ended, attempt)
            self._tasks[job_id] = start_sync(task, job, attempt, self._threads, on_end)

    async def _work(self, attempt: Attempt, job: Job, task: AnyTask) -> None:
        """Run an async task's attempt in its own asyncio task (which a cancel can stop)."""
        outcome: Outcome | None = None
        try:
            outcome = await run_attempt(task, job, attempt, self._threads)
        except asyncio.CancelledError:
            if attempt.cancel.is_set():  # asked to stop: the broker ends it cancelled
                outcome = cancelled(attempt, "its coroutine was cancelled")
            elif not attempt.lost:  # cancelled by shutdown: hand it back, attempt not spent
                outcome = RetryLater(attempt.claimed.lease, 0, count_attempt=False)
        finally:
            self._ended(attempt, outcome)

    def _ended(self, attempt: Attempt, outcome: Outcome | None) -> None:
        """An attempt stopped holding its slot: record its outcome, or forget a lost one."""
        job_id = attempt.claimed.job_id
        del self._tasks[job_id]
        self._slot_free.set()
        if attempt.lost or outcome is None:
            self._forget(job_id)
        else:
            self._record(outcome)

    def _is_async(self, attempt: Attempt) -> bool:
        """Whether the attempt runs an ``async`` task (which, unlike a thread, can be cancelled)."""
        job = attempt.job
        task = self.app.tasks.get(job.task) if job is not None else None
        return task is not None and task.is_async

    def _lost(self, attempt: Attempt) -> None:
        attempt.lost = True
        task = self._tasks.get(attempt.claimed.job_id)
        if task is not None and self._is_async(attempt):
            task.cancel()  # a thread cannot be cancelled: a sync job runs on, its outcome dropped

    def _cancel(self, attempt: Attempt) -> None:
        """A lease renewal reported a cancel request: cancel an async task; a sync one only
        sees ``current_job().cancelled`` (a thread cannot be interrupted)."""
        attempt.cancel.set()
        task = self._tasks.get(attempt.claimed.job_id)
        if task is not None and self._is_async(attempt):
            task.cancel()

    def _record(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        if len(self._pending) == 1:
            asyncio.get_running_loop().create_task(self._flush())

    def _forget(self, job_id: str) -> None:
        self._attempts.pop(job_id, None)
        self.leases.release(job_id)

    async def _flush(self) -> None:
        """Write pending outcomes in one batch; outcomes arriving meanwhile make the next batch."""
        failures = 0
        while self._pending:
            batch = list(self._pending)
            try:
                await self.io(partial(outcomes.write, self.broker, batch))
            except BrokerError as exc:
                failures += 1
                delay = RECONNECT.delay(failures)
                log.warning(
                    "cannot record %d outcome(s) (%s); retrying in %.1fs", len(batch), exc, delay
                )
                await asyncio.sleep(delay)
                continue
            del self._pending[: len(batch)]
            for outcome in batch:
                self._forget(outcome.lease.job_id)
        self._flushed.set()
        if self.options.burst and not self._tasks:
            self._alarm.ring()  # the last outcome is written: time to see if all is done

    async def _drain(self) -> None:
        """After the claim loop: give running jobs the grace period, hand back the rest."""
        if self._tasks:
            log.info(
                "stopping: waiting up to %gs for %d running job(s)",
                self.options.grace,
                len(self._tasks),
            )
            await asyncio.wait(list(self._tasks.values()), timeout=self.options.grace)
        cancelled: list[asyncio.Future[None]] = []
        for job_id, task in list(self._tasks.items()):
            attempt = self._attempts[job_id]
            log.warning("handing back job %s unfinished (its attempt is not counted)", job_id)
            if self._is_async(attempt):
                task.cancel()
                cancelled.append(task)
            else:
                attempt.lost = True  # the thread runs on until exit; its outcome is not ours now
                self._record(RetryLater(attempt.claimed.lease, 0, count_attempt=False))
        if cancelled:
            # only the cancelled coroutines can end now; waiting for a handed-back thread
            # would only stretch the shutdown past --grace
            await asyncio.wait(cancelled, timeout=5)
        await self._await_flushed(FINAL_FLUSH)

    async def _await_flushed(self, timeout: float) -> None:
        """Wait for pending outcomes to be written; past ``timeout``, say what is left behind."""
        deadline = time.monotonic() + timeout
        while self._pending and (left := deadline - time.monotonic()) > 0:
            self._flushed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._flushed.wait(), left)
        if self._pending:
            log.error(
                "could not record %d outcome(s) before exiting (broker unreachable); those jobs "
                "run again once their leases end",
                len(self._pending),
            )
