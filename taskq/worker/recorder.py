"""The worker's outcome thread: it decides what ended attempts come to and writes it in batches."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..brokers.base import Broker
from ..errors import BrokerError
from ..job import Job
from ..retry import Backoff
from ..task import AnyTask
from . import logs, outcomes
from .leases import LeaseKeeper
from .logs import log
from .outcome import Attempt, Outcome, settle

FINAL_FLUSH = 10.0  # seconds a stopping worker keeps trying to record outcomes
RECONNECT = Backoff(initial=0.1, factor=2.0, cap=5.0, jitter=0.2)
_STOP = None


@dataclass
class Ran:
    """A task's call returned (``ok``) or raised ``value`` (or a plain one ran over its timeout)."""

    attempt: Attempt
    job: Job
    task: AnyTask
    ok: bool
    value: Any


@dataclass
class Ended:
    """An attempt ended with ``outcome`` already decided (``None``: nothing to record)."""

    attempt: Attempt
    outcome: Outcome | None


class Recorder:
    """Takes the attempts that ended, decides what each comes to (logging its outcome line),
    and writes the outcomes in one batch, with all that ended meanwhile. It runs on a thread
    (and so a connection) of its own: a claim held up in the broker holds up no outcome, nor
    an outcome the claims; and one thread writes the per-job log lines, so task threads do not
    contend for the log handler's lock. A lease is released once its outcome is written.
    """

    def __init__(
        self,
        broker: Broker,
        leases: LeaseKeeper[Attempt],
        freed: Callable[[list[Attempt]], None],
        written: Callable[[], None],
        fatal: Callable[[], None],
    ) -> None:
        self.broker = broker
        self.leases = leases
        self._freed = freed  # called with the attempts decided in a batch, before it is written
        self._written = written  # called after each batch is written
        self._fatal = fatal  # called when a task raised KeyboardInterrupt or SystemExit
        self._inbox: queue.SimpleQueue[Ran | Ended | None] = queue.SimpleQueue()
        # outcomes decided and not yet written: the batch's length (set by this thread only)
        self.unwritten = 0
        self._thread = threading.Thread(target=self._run, name="taskq-record", daemon=True)
        self._thread.start()

    def ran(self, attempt: Attempt, job: Job, task: AnyTask, ok: bool, value: Any) -> None:
        """A task's call ended (thread-safe): decide its outcome and write it."""
        self._inbox.put(Ran(attempt, job, task, ok, value))

    def ended(self, attempt: Attempt, outcome: Outcome | None) -> None:
        """An attempt ended with ``outcome`` (thread-safe): write it."""
        self._inbox.put(Ended(attempt, outcome))

    def finish(self) -> None:
        """Write what is left (for up to :data:`FINAL_FLUSH` seconds), then end the thread."""
        self._inbox.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        batch: list[Outcome] = []
        failures = 0
        pause = 0.0  # seconds to wait before retrying a failed write
        give_up_at: float | None = None  # set by a stop: when to stop retrying
        while True:
            if failures:  # back off, then retry with whatever arrived meanwhile
                if give_up_at is not None:
                    pause = min(pause, give_up_at - time.monotonic())
                time.sleep(max(pause, 0.0))
                give_up_at = self._take(batch, 0.0, give_up_at)
            elif not batch:
                if give_up_at is not None and self._inbox.empty():
                    return
                give_up_at = self._take(batch, None, give_up_at)
            if not batch:
                continue
            try:
                outcomes.write(self.broker, batch)
            except BrokerError as exc:
                failures += 1
                if give_up_at is not None and time.monotonic() >= give_up_at:
                    break
                pause = RECONNECT.delay(failures)
                log.warning(
                    "cannot record %d outcome(s) (%s); retrying in %.1fs", len(batch), exc, pause
                )
                continue
            failures = 0
            self.leases.release([outcome.lease.job_id for outcome in batch])
            self.unwritten = 0
            batch = []
            self._written()
        log.error(
            "could not record %d outcome(s) before exiting (broker unreachable); those jobs "
            "run again once their leases end",
            len(batch),
        )

    def _take(
        self, batch: list[Outcome], wait: float | None, give_up_at: float | None
    ) -> float | None:
        """Decide what arrives within ``wait`` seconds (None: until something does) and all
        there is after it, adding the outcomes to ``batch``; returns when to give up retrying
        (set once a stop arrives)."""
        try:
            item = self._inbox.get(timeout=wait) if wait != 0 else self._inbox.get_nowait()
        except queue.Empty:
            return give_up_at
        decided: list[Attempt] = []
        unrecorded: list[str] = []  # job ids of attempts with nothing to write
        with logs.batch():  # the outcome lines of what arrived together: one write
            while True:
                if item is _STOP:
                    give_up_at = time.monotonic() + FINAL_FLUSH
                else:
                    decided.append(item.attempt)
                    outcome = self._decide(item)
                    if outcome is None:
                        unrecorded.append(item.attempt.claimed.job_id)
                    else:
                        batch.append(outcome)
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    break
        if unrecorded:
            self.leases.release(unrecorded)
        if decided:
            self.unwritten = len(batch)
            self._freed(decided)
        return give_up_at

    def _decide(self, item: Ran | Ended) -> Outcome | None:
        if isinstance(item, Ended):
            return item.outcome
        try:
            return settle(item.task, item.job, item.attempt, item.ok, item.value)
        except BaseException as exc:  # KeyboardInterrupt or SystemExit, raised by the task
            log.error(
                "job %s raised %s: stopping the worker; the job runs again when its lease ends",
                item.attempt.claimed.job_id,
                type(exc).__name__,
            )
            self._fatal()
            return None
