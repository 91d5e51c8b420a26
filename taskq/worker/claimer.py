"""The worker's claim thread: it claims due jobs into free slots and hands them to run."""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from ..brokers.base import Bury, Claimed, RetryLater
from ..errors import BrokerError
from ..job import Job
from ..task import AnyTask
from .logs import log
from .outcome import Attempt, admit, call_sync
from .recorder import RECONNECT, Recorder

if TYPE_CHECKING:
    from .runner import Worker

CANCEL_WAIT = 5.0  # seconds a stopping worker waits for the async jobs it cancelled


@dataclass
class Freed:
    """Attempts the recorder decided: their slots are free."""

    attempts: list[Attempt]


@dataclass(frozen=True)
class Wake:
    """A job was enqueued: claim no later than ``at`` (monotonic seconds)."""

    at: float


@dataclass(order=True)
class Deadline:
    """When a plain task's attempt runs over its timeout."""

    at: float
    seq: int
    attempt: Attempt = field(compare=False)
    job: Job = field(compare=False)
    task: AnyTask = field(compare=False)


_STOP = object()
News = Freed | Wake | object


class Claimer:
    """Runs on a thread of its own: each turn it takes the news (slots freed, wake-ups, a
    stop) and claims up to the free slots in one call.

    Plain-task jobs go straight to the task threads, which hand what the call returned to the
    :class:`~taskq.worker.recorder.Recorder`: such a job costs no event-loop hop. Async-task
    jobs start on the worker's event loop. Only this thread changes ``running``; other threads
    talk to it through its inbox.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.inbox: queue.SimpleQueue[News] = queue.SimpleQueue()
        self.running: dict[str, Attempt] = {}  # attempts holding a slot, by job id
        self._recorder: Recorder | None = None
        self._deadlines: list[Deadline] = []
        self._seq = itertools.count()
        self._next_claim = 0.0  # monotonic time of the next claim, when a slot is free
        self._claim_failures = 0
        self._stopping = False
        self._grace_ends = 0.0
        self._idle = False  # burst mode: the last claim found nothing waiting at all
        self.stop_asked: float | None = None  # monotonic time of the first stop() call

    # -- called from other threads ------------------------------------------------------------

    def freed(self, attempts: list[Attempt]) -> None:
        """The recorder decided these attempts: their slots are free (thread-safe)."""
        self.inbox.put(Freed(attempts))

    def wake_at(self, at: float) -> None:
        """Claim no later than monotonic time ``at`` (thread-safe)."""
        self.inbox.put(Wake(at))

    def stop(self) -> None:
        """Claim nothing more; give running jobs the grace period (thread-safe)."""
        if self.stop_asked is None:
            self.stop_asked = time.monotonic()
        self.inbox.put(_STOP)

    # -- the thread ---------------------------------------------------------------------------

    def run(self) -> None:
        """Claim until stopped (or idle, in burst mode), then hand back what still runs and
        write the last outcomes."""
        burst = self.worker.options.burst
        # in burst mode, what was written may end the work (or add to it): look again
        written = partial(self.wake_at, 0.0) if burst else _nothing
        w = self.worker
        recorder = self._recorder = Recorder(w.broker, w.leases, self.freed, written, self.stop)
        try:
            while not self._done(recorder):
                self._take(self._wait())
                self._expire(time.monotonic())
                if self._should_claim():
                    self._claim()
            self._hand_back()
        finally:
            recorder.finish()

    def _done(self, recorder: Recorder) -> bool:
        if self._stopping:
            return not self.running or time.monotonic() >= self._grace_ends
        # outcomes not yet written count as work: a retry still pending is not waiting yet
        o = self.worker.options
        return o.burst and self._idle and not self.running and not recorder.unwritten

    def _free(self) -> int:
        return self.worker.options.concurrency - len(self.running)

    def _should_claim(self) -> bool:
        return not self._stopping and self._free() > 0 and time.monotonic() >= self._next_claim

    def _wait(self) -> float | None:
        """Seconds to wait for news before the next thing this thread has to do (None: none)."""
        times: list[float] = []
        if not self._stopping and self._free() > 0:
            times.append(self._next_claim)
        if self._deadlines:
            times.append(self._deadlines[0].at)
        if self._stopping:
            times.append(self._grace_ends)
        if not times:
            return None
        return max(min(times) - time.monotonic(), 0.0)

    def _take(self, wait: float | None) -> None:
        """Wait up to ``wait`` seconds for news, then take all there is."""
        try:
            news = self.inbox.get(timeout=wait) if wait != 0 else self.inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            self._handle(news)
            try:
                news = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _handle(self, news: News) -> None:
        if isinstance(news, Freed):
            for attempt in news.attempts:
                self.running.pop(attempt.claimed.job_id, None)
            self._idle = False
            if len(self._deadlines) > 2 * len(self.running) + 16:
                self._forget_deadlines()
        elif isinstance(news, Wake):  # a job was enqueued, or outcomes written: look again
            self._idle = False
            self._next_claim = min(self._next_claim, news.at)
        elif news is _STOP:
            self._begin_stop()

    @property
    def recorder(self) -> Recorder:
        """Where ended attempts go to be decided and written (made when this thread starts)."""
        assert self._recorder is not None  # made before the first claim
        return self._recorder

    def _begin_stop(self) -> None:
        if not self._stopping:
            self._stopping = True
            self._grace_ends = time.monotonic() + self.worker.options.grace
            if self.running:
                log.info(
                    "stopping: waiting up to %gs for %d running job(s)",
                    self.worker.options.grace,
                    len(self.running),
                )

    # -- broker calls -------------------------------------------------------------------------

    def _claim(self) -> None:
        worker = self.worker
        o = worker.options
        free = self._free()
        sent = time.monotonic()
        try:
            batch = worker.broker.claim(o.queues, free, int(o.lease * 1000), worker.id)
        except BrokerError as exc:
            self._claim_failures += 1
            delay = RECONNECT.delay(self._claim_failures)
            log.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
            self._next_claim = time.monotonic() + delay
            return
        if self._claim_failures:
            log.info("broker reachable again after %d failed attempt(s)", self._claim_failures)
            self._claim_failures = 0
        self._start(batch.jobs, sent)
        next_due_ms = batch.next_due_ms
        self._idle = next_due_ms is None and not batch.jobs
        if len(batch.jobs) >= free or next_due_ms == 0:
            self._next_claim = sent  # claim again as soon as a slot is free
        elif next_due_ms is None:
            self._next_claim = sent + o.poll_interval
        else:
            # next_due_ms was measured by the broker's clock about half a round trip after
            # ``sent``: a claim sent ``next_due_ms`` after this one reaches it when the job is due
            self._next_claim = sent + min(next_due_ms / 1000, o.poll_interval)

    def _start(self, jobs: list[Claimed], sent: float) -> None:
        worker = self.worker
        threads = worker.threads
        assert threads is not None  # made by Worker.run() before this thread starts
        on_loop: list[tuple[Attempt, Job, AnyTask]] = []
        for claimed in jobs:
            attempt = Attempt(claimed)
            worker.leases.hold(
                claimed.lease,
                sent,
                partial(worker.lost, attempt),
                partial(worker.cancel, attempt),
            )
            admitted = admit(worker.app, attempt)
            if isinstance(admitted, Bury):
                self.recorder.ended(attempt, admitted)
                continue
            job, task = admitted
            self.running[claimed.job_id] = attempt
            if task.is_async:
                on_loop.append((attempt, job, task))
                continue
            if task.options.timeout is not None:
                at = time.monotonic() + task.options.timeout
                heapq.heappush(self._deadlines, Deadline(at, next(self._seq), attempt, job, task))
            threads.submit(partial(self._run_sync, attempt, job, task))
        if on_loop:
            worker.start_async(on_loop)

    def _run_sync(self, attempt: Attempt, job: Job, task: AnyTask) -> None:
        """On a task thread: run the attempt and hand what it returned or raised to the
        recorder, unless its timeout ended it first."""
        ok, value = call_sync(task, job, attempt)
        if attempt.finish():
            self.recorder.ran(attempt, job, task, ok, value)

    def _forget_deadlines(self) -> None:
        """Drop the deadlines of attempts that ended: a long timeout would otherwise keep
        every finished job of its task in memory until it passed."""
        live = [
            d for d in self._deadlines if self.running.get(d.attempt.claimed.job_id) is d.attempt
        ]
        heapq.heapify(live)
        self._deadlines = live

    def _expire(self, now: float) -> None:
        """End the plain-task attempts past their timeout (their threads run on: a thread
        cannot be stopped, and what it returns later is dropped)."""
        while self._deadlines and self._deadlines[0].at <= now:
            d = heapq.heappop(self._deadlines)
            if d.attempt.finish():
                self.recorder.ran(d.attempt, d.job, d.task, False, TimeoutError())

    # -- stopping -----------------------------------------------------------------------------

    def _hand_back(self) -> None:
        """Past the grace period: hand the jobs still running back to the queue, their attempts
        not counted."""
        cancelled: list[Attempt] = []
        for attempt in list(self.running.values()):
            job_id = attempt.claimed.job_id
            log.warning("handing back job %s unfinished (its attempt is not counted)", job_id)
            if self.worker.is_async(attempt):
                cancelled.append(attempt)
            elif attempt.finish():  # the thread runs on until exit; its outcome is not ours now
                attempt.lost = True
                outcome = RetryLater(attempt.claimed.lease, 0, count_attempt=False)
                self.recorder.ended(attempt, outcome)
        if cancelled:
            self.worker.cancel_async(cancelled)
        # waits for the handed-back attempts to be decided; only cancelled coroutines (and calls
        # that ended just now) can still end: no thread is waited for past the grace period
        until = time.monotonic() + CANCEL_WAIT
        while self.running and (left := until - time.monotonic()) > 0:
            self._take(left)


def _nothing() -> None:
    pass


def start(claimer: Claimer) -> threading.Thread:
    """Run ``claimer`` on a daemon thread of its own; the worker stops when the thread ends."""

    def run() -> None:
        try:
            claimer.run()
        except Exception:  # a bug: say so; claimed jobs run again when their leases end
            log.exception("the worker's claim thread failed; the worker stops")

    thread = threading.Thread(target=run, name="taskq-claim", daemon=True)
    thread.start()
    return thread
