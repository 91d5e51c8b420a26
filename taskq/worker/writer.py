"""The worker's write thread: it writes decided outcomes in batches, retrying while it cannot."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..brokers.base import Broker
from ..errors import BrokerError
from ..retry import Backoff
from . import outcomes
from .leases import LeaseKeeper
from .logs import log
from .outcome import Attempt, Outcome

FINAL_FLUSH = 10.0  # seconds a stopping worker keeps trying to record outcomes
RECONNECT = Backoff(initial=0.1, factor=2.0, cap=5.0, jitter=0.2)


class Writer:
    """Writes the outcomes the :class:`~taskq.worker.recorder.Recorder` decided: all that are
    waiting, in one batch (an ack, a retry and a bury call per queue at most). It runs on a
    thread (and so a connection) of its own, so deciding never waits for a write: the slots
    of the jobs just decided are claimed again while their outcomes are on their way. A lease
    is released once its outcome is written. A write that fails is tried again with backoff,
    with what was decided meanwhile.
    """

    def __init__(
        self, broker: Broker, leases: LeaseKeeper[Attempt], written: Callable[[], None]
    ) -> None:
        self.broker = broker
        self.leases = leases
        self._written = written  # called after each batch is written
        self._lock = threading.Lock()
        self._more = threading.Condition(self._lock)  # outcomes came, or finish() was called
        self._waiting: list[Outcome] = []
        self._give_up_at: float | None = None  # set by finish(): when to stop retrying
        # outcomes given and not yet written (waiting or being written)
        self.unwritten = 0
        self._thread = threading.Thread(target=self._run, name="taskq-write", daemon=True)
        self._thread.start()

    def write(self, batch: list[Outcome]) -> None:
        """Write these outcomes with the next batch (thread-safe)."""
        with self._lock:
            self._waiting += batch
            self.unwritten += len(batch)
            self._more.notify()

    def finish(self) -> None:
        """Write what is left (for up to :data:`FINAL_FLUSH` seconds), then end the thread."""
        with self._lock:
            self._give_up_at = time.monotonic() + FINAL_FLUSH
            self._more.notify()
        self._thread.join()

    def _take(self, batch: list[Outcome], pause: float | None) -> float | None:
        """Add the waiting outcomes to ``batch``, after a ``pause`` of that many seconds (cut
        short by the give-up time) or, with None, once there are some or a finish was asked;
        returns when to give up retrying (None: no finish asked yet)."""
        with self._lock:
            if pause is None:
                while not self._waiting and self._give_up_at is None:
                    self._more.wait()
            else:
                until = time.monotonic() + pause
                while (left := min(until, self._give_up_at or until) - time.monotonic()) > 0:
                    self._more.wait(left)  # outcomes that come meanwhile wait for the retry
            batch += self._waiting
            self._waiting = []
            return self._give_up_at

    def _run(self) -> None:
        batch: list[Outcome] = []
        failures = 0
        pause = 0.0  # seconds to wait before retrying a failed write
        while True:
            give_up_at = self._take(batch, pause if failures else None)
            if not batch:
                return  # finishing, and nothing is left
            try:
                outcomes.write(self.broker, batch)
            except BrokerError as exc:
                failures += 1
                now = time.monotonic()
                if give_up_at is not None and now >= give_up_at:
                    break
                pause = RECONNECT.delay(failures)
                if give_up_at is not None:
                    pause = min(pause, give_up_at - now)
                log.warning(
                    "cannot record %d outcome(s) (%s); retrying in %.1fs", len(batch), exc, pause
                )
                continue
            failures = 0
            self.leases.release([outcome.lease.job_id for outcome in batch])
            with self._lock:
                self.unwritten -= len(batch)
            batch = []
            self._written()
        log.error(
            "could not record %d outcome(s) before exiting (broker unreachable); those jobs "
            "run again once their leases end",
            len(batch),
        )
