"""A fixed set of daemon threads that run plain task calls, each call on the first free thread."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from .logs import log

_STOP = None


class TaskThreads:
    """A bounded pool of task threads; a call runs to its end on one of them.

    Unlike ``ThreadPoolExecutor`` it makes no future per call: whoever submits a call says in
    the call itself where its result goes (the worker's recorder, an event loop), so a finished
    job costs no hop through an event loop.
    """

    def __init__(self, size: int) -> None:
        self._inbox: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"taskq-task-{n}", daemon=True)
            for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[[], None]) -> None:
        """Run ``call()`` on a task thread (queued until one is free)."""
        self._inbox.put(call)

    def drain(self) -> list[Callable[[], None]]:
        """Take back the calls no thread has started."""
        calls: list[Callable[[], None]] = []
        stops = 0
        while True:
            try:
                call = self._inbox.get_nowait()
            except queue.Empty:
                break
            if call is _STOP:
                stops += 1
            else:
                calls.append(call)
        for _ in range(stops):
            self._inbox.put(_STOP)
        return calls

    def stop(self) -> None:
        """Let idle threads end; a thread still running a call ends when the call returns."""
        for _ in self._threads:
            self._inbox.put(_STOP)

    def _serve(self) -> None:
        while (call := self._inbox.get()) is not _STOP:
            try:
                call()
            except Exception:  # a call reports its own outcome; this is a bug in that report
                log.exception("a task thread's call failed")
