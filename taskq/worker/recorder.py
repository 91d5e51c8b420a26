"""The worker's outcome thread: it decides what ended attempts come to, as they end."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..brokers.base import Broker
from ..job import Job
from ..task import AnyTask
from . import logs
from .leases import LeaseKeeper
from .logs import log
from .outcome import Attempt, Outcome, settle
from .writer import Writer

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
    """Takes the attempts that ended, decides what each comes to (logging its outcome line), frees
    their slots, and hands the outcomes to its :class:`~taskq.worker.writer.Writer`. It decides
    all that ended together at once, and never waits for a write: slots free up as jobs end,
    not a round trip to the broker later. One thread writes the per-job log lines, so task
    threads do not contend for the log handler's lock.
    """

    def __init__(
        self,
        broker: Broker,
        leases: LeaseKeeper[Attempt],
        freed: Callable[[list[Attempt]], None],
        written: Callable[[], None],
        fatal: Callable[[], None],
    ) -> None:
        self.leases = leases
        self._freed = freed  # called with the attempts decided together, before they are written
        self._fatal = fatal  # called when a task raised KeyboardInterrupt or SystemExit
        self.writer = Writer(broker, leases, written)
        self._inbox: queue.SimpleQueue[Ran | Ended | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="taskq-record", daemon=True)
        self._thread.start()

    @property
    def unwritten(self) -> int:
        """Outcomes decided and not yet written."""
        return self.writer.unwritten

    def ran(self, attempt: Attempt, job: Job, task: AnyTask, ok: bool, value: Any) -> None:
        """A task's call ended (thread-safe): decide its outcome and write it."""
        self._inbox.put(Ran(attempt, job, task, ok, value))

    def ended(self, attempt: Attempt, outcome: Outcome | None) -> None:
        """An attempt ended with ``outcome`` (thread-safe): write it."""
        self._inbox.put(Ended(attempt, outcome))

    def finish(self) -> None:
        """Decide what has ended, write what is left (see :meth:`Writer.finish`), then end."""
        self._inbox.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        try:
            while self._take():
                pass
        finally:
            self.writer.finish()

    def _take(self) -> bool:
        """Decide what arrives first and all there is after it; ``False`` once a stop came
        (and what came before it was decided)."""
        item = self._inbox.get()
        decided: list[Attempt] = []
        batch: list[Outcome] = []
        unrecorded: list[str] = []  # job ids of attempts with nothing to write
        going_on = True
        with logs.batch():  # the outcome lines of what arrived together: one write
            while True:
                if item is _STOP:
                    going_on = False
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
        if batch:  # counted as unwritten before the slots are free: a burst worker waits for it
            self.writer.write(batch)
        if decided:
            self._freed(decided)
        return going_on

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
