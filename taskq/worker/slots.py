"""The worker's slots: one count of running jobs, taken by task threads and the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections import deque


class Slots:
    """``--concurrency`` as a count that plain tasks (on task threads) and async tasks (on the
    event loop) take from alike, so a worker that claimed more jobs than it has slots (jobs it
    holds ready, see :mod:`~taskq.worker.prefetch`) still runs no more than ``size`` at once.

    A thread blocks in :meth:`take`; a coroutine awaits :meth:`atake`. A slot given back goes
    to the longest-waiting coroutine first, else to a waiting thread.
    """

    def __init__(self, size: int) -> None:
        self._lock = threading.Lock()
        self._free = size
        self._thread_wakeup = threading.Condition(self._lock)
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    @property
    def free(self) -> int:
        """Slots not taken now."""
        return self._free

    def take(self) -> None:
        """Take a slot, waiting for one if none is free (from a task thread)."""
        with self._lock:
            while self._free <= 0:
                self._thread_wakeup.wait()
            self._free -= 1

    async def atake(self) -> None:
        """Take a slot, awaiting one if none is free (from a coroutine). A cancel while it
        waits takes none."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0:
                self._free -= 1
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await waiter
        except asyncio.CancelledError:
            with self._lock:
                queued = (loop, waiter) in self._waiters
                if queued:
                    self._waiters.remove((loop, waiter))
            # a slot handed over just before the cancel is passed on; one still on its way
            # is passed on by _hand_over, which finds the waiter cancelled
            if not queued and waiter.done() and not waiter.cancelled():
                self.give()
            raise

    def give(self) -> None:
        """Give a slot back (from any thread)."""
        with self._lock:
            if self._waiters:
                loop, waiter = self._waiters.popleft()
            else:
                self._free += 1
                self._thread_wakeup.notify()
                return
        try:
            loop.call_soon_threadsafe(self._hand_over, waiter)
        except RuntimeError:  # its loop is closed: nobody there takes it
            self.give()

    def _hand_over(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():  # cancelled meanwhile: the next one gets it
            self.give()
        else:
            waiter.set_result(None)
