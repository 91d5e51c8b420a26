"""The worker's claim thread: it claims due jobs for its slots and hands them to run."""

from __future__ import annotations

import heapq
import itertools
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from ..brokers.base import Bury, Claimed
from ..errors import BrokerError
from ..job import Job
from ..task import AnyTask
from .logs import log
from .outcome import Attempt, admit, call_sync, cancelled, handed_back
from .prefetch import Prefetch
from .recorder import Recorder
from .writer import RECONNECT

if TYPE_CHECKING:
    from .runner import Worker

CANCEL_WAIT = 5.0  # seconds a stopping worker waits for the async jobs it cancelled
# Seconds ahead of its due time a job is claimed: it is held under its lease and started when
# due by this worker's timer, so its start waits for no round trip to the broker (one to an idle
# Redis took 0.8 ms of a job's lateness). Its wait comes from the broker's clock: never early.
CLAIM_AHEAD = 0.010
# Seconds before a job's due time the worker sends the claim that takes it (less than
# CLAIM_AHEAD). It covers that claim's round trip, and the travel of a wake-up, whose delay was
# measured when the broker sent it: a worker that slept exactly that long started the job late.
CLAIM_EARLY = 0.005


@dataclass
class Freed:
    """Attempts the recorder decided: their slots are free."""

    attempts: list[Attempt]


@dataclass(frozen=True)
class Wake:
    """A job was enqueued: claim no later than ``at`` (monotonic seconds)."""

    at: float


@dataclass(order=True)
class Timed:
    """An attempt with a time (monotonic seconds): when a job held until due starts, or when a
    plain task's attempt runs over its timeout."""

    at: float
    seq: int
    attempt: Attempt = field(compare=False)
    job: Job = field(compare=False)
    task: AnyTask = field(compare=False)


@dataclass
class Ready:
    """A plain task's attempt waiting for a task thread and a slot."""

    claimer: Claimer
    attempt: Attempt
    job: Job
    task: AnyTask

    def __call__(self) -> None:
        self.claimer._run_sync(self)


@dataclass(frozen=True)
class Started:
    """A plain task's attempt with a timeout started: it ends at ``at`` if still running."""

    ready: Ready
    at: float


_STOP = object()
_HELD_NEWS = object()  # a lease was lost or a cancel asked: a held job may end unstarted
News = Freed | Wake | Started | object


class Claimer:
    """Runs on a thread of its own: each turn it takes the news (attempts decided, wake-ups,
    a stop), starts the jobs it holds that are now due, and claims in one call for the free
    slots and the ready jobs its :class:`~taskq.worker.prefetch.Prefetch` asks for (with the
    jobs due within :data:`CLAIM_AHEAD`, which it holds until due).

    Plain-task jobs go straight to the task threads, which run each when they have a slot and
    hand what the call returned to the :class:`~taskq.worker.recorder.Recorder`: such a job
    costs no event-loop hop. Async-task jobs go to the worker's event loop. Only this thread
    changes ``running`` (every attempt in hand: ready, held until due, or running); other
    threads talk to it through its inbox.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.inbox: queue.SimpleQueue[News] = queue.SimpleQueue()
        self.running: dict[str, Attempt] = {}  # attempts in hand, by job id
        o = worker.options
        self.prefetch = Prefetch(o.concurrency, o.most_ready)
        self._recorder: Recorder | None = None
        self._deadlines: list[Timed] = []
        self._held: list[Timed] = []  # claimed ahead, not started yet (they hold slots)
        self._seq = itertools.count()
        self._next_claim = 0.0  # monotonic time of the next claim, when a slot is free
        self._claim_failures = 0
        self._stopping = False
        self._grace_ends = 0.0
        self._idle = False  # burst mode: the last claim found nothing waiting at all
        self.stop_asked: float | None = None  # monotonic time of the first stop() call
        self.failed = False  # the claim thread ended on an error: the worker exits with code 1

    # -- called from other threads ------------------------------------------------------------

    def freed(self, attempts: list[Attempt]) -> None:
        """The recorder decided these attempts: their slots are free (thread-safe)."""
        self.inbox.put(Freed(attempts))

    def woken(self, delay_ms: int) -> None:
        """A job was enqueued, due in ``delay_ms`` as the broker said when it sent the wake-up
        (thread-safe)."""
        self.inbox.put(Wake(time.monotonic() + delay_ms / 1000 - CLAIM_EARLY))

    def wake_at(self, at: float) -> None:
        """Claim no later than monotonic time ``at`` (thread-safe)."""
        self.inbox.put(Wake(at))

    def attempt_news(self) -> None:
        """An attempt's lease was lost or a cancel asked for it (thread-safe): if it is held
        until due, it ends now, unstarted."""
        self.inbox.put(_HELD_NEWS)

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
                now = time.monotonic()
                self._release(now)
                self._expire(now)
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

    def _batch(self) -> int:
        """Most jobs one claim takes: with ready jobs, half of what the worker may hold, so
        that one batch runs while the next is on its way (a worker that claimed only once all
        it held was done kept its task threads waiting a round trip per batch)."""
        concurrency = self.worker.options.concurrency
        return max(concurrency, (concurrency + self.prefetch.size) // 2)

    def _free(self) -> int:
        """How many jobs a claim may take now: free slots and ready jobs wanted."""
        o = self.worker.options
        room = o.concurrency + self.prefetch.size - len(self.running)
        return min(room, self._batch())

    def _may_claim(self) -> bool:
        """Whether to claim now: with ready jobs, once a whole batch is free, so that claims
        stay big enough to cost the broker little per job; without, once a slot is."""
        need = self._batch() if self.prefetch.size else 1
        return not self._stopping and self._free() >= need

    def _should_claim(self) -> bool:
        return self._may_claim() and time.monotonic() >= self._next_claim

    def _wait(self) -> float | None:
        """Seconds to wait for news before the next thing this thread has to do (None: none)."""
        times: list[float] = []
        if self._may_claim():
            times.append(self._next_claim)
        if self._deadlines:
            times.append(self._deadlines[0].at)
        if self._held:
            times.append(self._held[0].at)
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
                if attempt.ran_for is not None:
                    self.prefetch.ran(attempt.ran_for)
            self._idle = False
            if len(self._deadlines) > 2 * len(self.running) + 16:
                self._forget_deadlines()
        elif isinstance(news, Wake):  # a job was enqueued, or outcomes written: look again
            self._idle = False
            self._next_claim = min(self._next_claim, news.at)
        elif isinstance(news, Started):
            r = news.ready
            timed = Timed(news.at, next(self._seq), r.attempt, r.job, r.task)
            heapq.heappush(self._deadlines, timed)
        elif news is _HELD_NEWS:
            held = [h for h in self._held if not self._ended_unstarted(h.attempt)]
            heapq.heapify(held)
            self._held = held
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
            self._hand_back_ready()
            if running := self.worker.running:
                log.info(
                    "stopping: waiting up to %gs for %d running job(s)",
                    self.worker.options.grace,
                    running,
                )

    # -- broker calls -------------------------------------------------------------------------

    def _claim(self) -> None:
        worker = self.worker
        o = worker.options
        free = self._free()
        sent = time.monotonic()
        try:
            batch = worker.broker.claim(
                o.queues, free, int(o.lease * 1000), worker.id, CLAIM_AHEAD * 1000
            )
        except BrokerError as exc:
            self._claim_failures += 1
            delay = RECONNECT.delay(self._claim_failures)
            log.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
            self._next_claim = time.monotonic() + delay
            return
        self.prefetch.claimed(time.monotonic() - sent)
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
            # ``sent``: a claim sent then, less CLAIM_EARLY, takes the job ahead of its time
            wait = max(next_due_ms / 1000 - CLAIM_EARLY, 0.0)
            self._next_claim = sent + min(wait, o.poll_interval)

    def _start(self, jobs: list[Claimed], sent: float) -> None:
        """Start the claimed jobs, or hold those claimed ahead until they are due."""
        worker = self.worker
        # a job's wait was measured by the broker's clock before its reply left: counted from
        # its arrival, it ends no earlier than the job's due time
        arrived = time.monotonic()
        on_loop: list[tuple[Attempt, Job, AnyTask]] = []
        attempts = [Attempt(claimed) for claimed in jobs]
        worker.leases.hold(((a.claimed.lease, a) for a in attempts), sent)
        for attempt in attempts:
            claimed = attempt.claimed
            admitted = admit(worker.app, attempt)
            if isinstance(admitted, Bury):
                self.recorder.ended(attempt, admitted)
                continue
            job, task = admitted
            self.running[claimed.job_id] = attempt
            if claimed.wait_ms > 0:
                at = arrived + claimed.wait_ms / 1000
                heapq.heappush(self._held, Timed(at, next(self._seq), attempt, job, task))
            else:
                self._begin(attempt, job, task, on_loop)
        if on_loop:
            worker.start_async(on_loop)

    def _release(self, now: float) -> None:
        """Start the held jobs now due."""
        on_loop: list[tuple[Attempt, Job, AnyTask]] = []
        while self._held and self._held[0].at <= now:
            h = heapq.heappop(self._held)
            if not self._ended_unstarted(h.attempt):
                h.attempt.started = now
                self._begin(h.attempt, h.job, h.task, on_loop)
        if on_loop:
            self.worker.start_async(on_loop)

    def _ended_unstarted(self, attempt: Attempt) -> bool:
        """End a held attempt whose lease was lost (nothing to record: the job is not ours) or
        for which a cancel was asked (it ends cancelled); ``False`` if neither happened."""
        if attempt.lost:
            outcome = None
        elif attempt.cancel.is_set():
            outcome = cancelled(attempt, "before it started")
        else:
            return False
        if attempt.finish():
            self.recorder.ended(attempt, outcome)
        return True

    def _begin(
        self,
        attempt: Attempt,
        job: Job,
        task: AnyTask,
        on_loop: list[tuple[Attempt, Job, AnyTask]],
    ) -> None:
        """Submit a plain task's attempt to the task threads; add an async one to ``on_loop``.
        Either runs once it has a slot."""
        if task.is_async:
            on_loop.append((attempt, job, task))
            return
        threads = self.worker.threads
        assert threads is not None  # made by Worker.run() before this thread starts
        threads.submit(Ready(self, attempt, job, task))

    def _run_sync(self, ready: Ready) -> None:
        """On a task thread: once a slot is free, run the attempt and hand what it returned or
        raised to the recorder, unless its timeout ended it first. One whose lease was lost or
        for which a cancel was asked while it waited ends unstarted."""
        attempt, job, task = ready.attempt, ready.job, ready.task
        if self._ended_unstarted(attempt):
            return
        slots = self.worker.slots
        slots.take()
        if self._stopping or attempt.lost:  # while it waited for a slot: it does not start
            slots.give()
            if attempt.finish():
                self.recorder.ended(attempt, None if attempt.lost else handed_back(attempt))
            return
        try:
            attempt.started = time.monotonic()
            if task.options.timeout is not None:
                self.inbox.put(Started(ready, attempt.started + task.options.timeout))
            ok, value = call_sync(task, job, attempt)
        finally:
            slots.give()
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

    @property
    def stopping(self) -> bool:
        """Whether a stop began: nothing more starts."""
        return self._stopping

    def _hand_back_ready(self) -> None:
        """A stop began: hand back at once the ready jobs no task thread or slot took yet,
        their attempts not counted, for another worker to run."""
        threads = self.worker.threads
        assert threads is not None
        handed = 0
        for call in threads.drain():
            if isinstance(call, Ready) and call.attempt.finish():
                self.recorder.ended(call.attempt, handed_back(call.attempt))
                handed += 1
        self.worker.hand_back_ready_async()
        if handed:
            log.info("stopping: handed back %d job(s) not started", handed)

    def _hand_back(self) -> None:
        """Past the grace period: hand the jobs still running back to the queue, their attempts
        not counted."""
        now = time.monotonic()
        for h in self._held:  # not started: back to waiting until the same due time
            if h.attempt.finish():
                wait_ms = math.ceil(max(h.at - now, 0.0) * 1000)
                self.recorder.ended(h.attempt, handed_back(h.attempt, wait_ms))
        held = {id(h.attempt) for h in self._held}
        self._held = []
        to_cancel: list[Attempt] = []
        for attempt in list(self.running.values()):
            job_id = attempt.claimed.job_id
            log.warning("handing back job %s unfinished (its attempt is not counted)", job_id)
            if id(attempt) in held:
                continue
            if self.worker.is_async(attempt):
                to_cancel.append(attempt)
            elif attempt.finish():  # the thread runs on until exit; its outcome is not ours now
                attempt.lost = True
                self.recorder.ended(attempt, handed_back(attempt))
        if to_cancel:
            self.worker.cancel_async(to_cancel)
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
        except Exception:  # a bug, or a broker that became unusable: say so; claimed jobs run
            # again when their leases end
            claimer.failed = True
            log.exception("the worker's claim thread failed; the worker stops")

    thread = threading.Thread(target=run, name="taskq-claim", daemon=True)
    thread.start()
    return thread
