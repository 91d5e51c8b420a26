"""The worker: claims due jobs for its slots, runs them, records outcomes, stops gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from ..app import App
from ..config import mask_url
from ..job import Job
from ..task import AnyTask
from . import claimer
from .checks import warn_about_broker
from .claimer import CANCEL_WAIT, Claimer
from .heartbeat import Heartbeat
from .leases import LeaseKeeper
from .logs import log
from .options import WorkerOptions
from .outcome import Attempt, Outcome, call_async, cancelled, handed_back
from .slots import Slots
from .threads import TaskThreads
from .writer import FINAL_FLUSH

T = TypeVar("T")

# Seconds a stop may take past the grace period: the wait for cancelled async jobs, the last
# outcomes' write, and a margin. Without a bound, a broker that does not answer (a dead network
# path) held the exit for its client's timeouts and retries: minutes.
STOP_BOUND = CANCEL_WAIT + FINAL_FLUSH + 2.0


class Worker:
    """Runs an app's tasks from the broker until stopped (or, in burst mode, until idle).

    Its claim thread (:class:`~taskq.worker.claimer.Claimer`) claims jobs, its outcome thread
    (:class:`~taskq.worker.recorder.Recorder`) decides what they came to, and its write thread
    (:class:`~taskq.worker.writer.Writer`) records that. Plain tasks
    run on task threads, async tasks on this worker's event loop, which also renews leases and
    sends heartbeats; both take one of its :class:`~taskq.worker.slots.Slots` to run.
    """

    def __init__(self, app: App, options: WorkerOptions | None = None) -> None:
        self.app = app
        self.options = options or WorkerOptions()
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.broker = app.broker
        self._io = ThreadPoolExecutor(2, thread_name_prefix="taskq-io")
        self.leases: LeaseKeeper[Attempt] = LeaseKeeper(
            self.broker, self.options.lease, self.io, self.lost, self.cancel
        )
        self.claimer = Claimer(self)
        self.threads: TaskThreads | None = None
        self.slots = Slots(self.options.concurrency)
        self._async: dict[str, asyncio.Task[None]] = {}  # async attempts in hand, by job id
        self._ready_async: set[str] = set()  # job ids of those still waiting for a slot
        self._loop: asyncio.AbstractEventLoop | None = None
        # the last stop passed its bound (the broker did not answer): threads may still be
        # blocked on it, so whoever runs this worker should end the process without waiting
        self.overran = False

    async def io(self, call: Callable[[], T]) -> T:
        """Run a blocking broker call off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._io, call)

    def stop(self) -> None:
        """Ask for a graceful stop (thread-safe): claim nothing more, let running jobs finish."""
        self.claimer.stop()

    @property
    def running(self) -> int:
        """How many jobs this worker is running now (at most its concurrency)."""
        return self.options.concurrency - self.slots.free

    @property
    def in_hand(self) -> int:
        """How many jobs this worker holds now: running, ready, or held until due."""
        return len(self.claimer.running)

    async def run(self) -> None:
        """Work until :meth:`stop` (or until idle with ``burst``), then shut down gracefully."""
        loop = self._loop = asyncio.get_running_loop()
        self.threads = TaskThreads(self.options.concurrency)
        self._announce()
        # settings that could lose jobs (an evicting Redis) are worth a warning before any work
        await self.io(partial(warn_about_broker, self.broker))
        stop_watch = self.broker.watch(self.options.queues, self.claimer.woken)
        heartbeat = Heartbeat(self)
        helpers = [asyncio.create_task(self.leases.run()), asyncio.create_task(heartbeat.run())]
        claiming = claimer.start(self.claimer)
        try:
            # the claim thread ends after the grace period and the last outcomes' write
            if not await loop.run_in_executor(None, self._wait_for, claiming):
                self.overran = True
                log.error(
                    "the broker did not answer within %gs of the stop: exiting with %d job(s) "
                    "still held or not recorded; they run again when their leases end",
                    self.options.grace + STOP_BOUND,
                    len(self.claimer.running),
                )
        except asyncio.CancelledError:
            self.claimer.stop()  # claim nothing more; what runs is recovered after its lease
            raise
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            stop_watch()
            if not self.overran:  # else its record ends with its time to live
                await heartbeat.forget()
            self._io.shutdown(wait=False)
            # daemon threads: one still running a handed-back sync job ends with the process
            self.threads.stop()
        log.info("worker %s stopped", self.id)

    def _wait_for(self, claiming: threading.Thread) -> bool:
        """Wait for the claim thread to end; ``False`` if a stop's bound passed first."""
        while claiming.is_alive():
            asked = self.claimer.stop_asked
            if asked is not None and time.monotonic() > asked + self.options.grace + STOP_BOUND:
                return False
            claiming.join(0.1)
        return True

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

    # -- async tasks, on the event loop -------------------------------------------------------

    def start_async(self, started: list[tuple[Attempt, Job, AnyTask]]) -> None:
        """Start async-task attempts on the event loop (thread-safe)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start_async, started)

    def _start_async(self, started: list[tuple[Attempt, Job, AnyTask]]) -> None:
        for attempt, job, task in started:
            if attempt.lost:  # lost before it could start
                self.claimer.recorder.ended(attempt, None)
                continue
            job_id = attempt.claimed.job_id
            self._async[job_id] = asyncio.create_task(self._work(attempt, job, task))

    async def _work(self, attempt: Attempt, job: Job, task: AnyTask) -> None:
        """Run an async task's attempt in its own asyncio task (which a cancel can stop) once
        a slot is free; the recorder decides what it comes to, as for a plain task."""
        recorder = self.claimer.recorder
        job_id = attempt.claimed.job_id
        took = started = False
        try:
            self._ready_async.add(job_id)
            try:
                await self.slots.atake()
            finally:
                self._ready_async.discard(job_id)
            took = True
            if self.claimer.stopping:  # a stop came while it waited for a slot: not started
                recorder.ended(attempt, handed_back(attempt))
                return
            started = True
            attempt.started = time.monotonic()
            ok, value = await call_async(task, job, attempt)
        except asyncio.CancelledError:
            outcome: Outcome | None = None  # its lease was lost: nothing of it is ours to record
            if attempt.lost:
                pass
            elif attempt.cancel.is_set():  # asked to stop: the broker ends it cancelled
                why = "its coroutine was cancelled" if started else "before it started"
                outcome = cancelled(attempt, why)
            else:  # cancelled by shutdown: hand it back, attempt not spent
                outcome = handed_back(attempt)
            recorder.ended(attempt, outcome)
        else:
            recorder.ran(attempt, job, task, ok, value)
        finally:
            if took:
                self.slots.give()
            del self._async[job_id]

    def hand_back_ready_async(self) -> None:
        """Hand back the async attempts still waiting for a slot, unstarted (thread-safe): a
        stopping worker starts nothing more."""
        self._cancel_on_loop(lambda: list(self._ready_async))

    def cancel_async(self, attempts: list[Attempt]) -> None:
        """Cancel running async-task attempts (thread-safe); each reports its end as usual."""
        self._cancel_on_loop(lambda: [attempt.claimed.job_id for attempt in attempts])

    def _cancel_on_loop(self, job_ids: Callable[[], list[str]]) -> None:
        """Cancel, on the event loop, the asyncio tasks of the jobs ``job_ids()`` names there."""
        assert self._loop is not None

        def cancel() -> None:
            for job_id in job_ids():
                task = self._async.get(job_id)
                if task is not None:
                    task.cancel()

        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs on it now
            self._loop.call_soon_threadsafe(cancel)

    def is_async(self, attempt: Attempt) -> bool:
        """Whether the attempt runs an ``async`` task (which, unlike a thread, can be cancelled)."""
        job = attempt.job
        task = self.app.tasks.get(job.task) if job is not None else None
        return task is not None and task.is_async

    # -- lease news, on the event loop --------------------------------------------------------

    def lost(self, attempt: Attempt) -> None:
        """Its lease was lost: cancel an async task; a sync job runs on, its outcome dropped."""
        attempt.lost = True
        self._tell(attempt)

    def cancel(self, attempt: Attempt) -> None:
        """A lease renewal reported a cancel request: cancel an async task; a sync one only
        sees ``current_job().cancelled`` (a thread cannot be interrupted)."""
        attempt.cancel.set()
        self._tell(attempt)

    def _tell(self, attempt: Attempt) -> None:
        """Pass on lease news of ``attempt``: its coroutine, if any, is cancelled, and the
        claim thread ends it if it has not started."""
        task = self._async.get(attempt.claimed.job_id)
        if task is not None:
            task.cancel()
        self.claimer.attempt_news()
