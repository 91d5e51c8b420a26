"""Run sync task calls on a fixed set of threads, handing their outcomes back to the event loop
in batches: one loop wake-up for every call that finished meanwhile, not one per call."""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .logs import log

_STOP = None

# called on the event loop with (True, what the call returned) or (False, what it raised)
Done = Callable[[bool, Any], None]


class TaskThreads:
    """A bounded pool of task threads bound to one event loop."""

    def __init__(self, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._inbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._finished: deque[tuple[Done, bool, Any]] = deque()
        self._signalled = False
        self._threads = [
            threading.Thread(target=self._serve, name=f"taskq-task-{n}", daemon=True)
            for n in range(size)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self,
        context: contextvars.Context,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        done: Done,
    ) -> None:
        """Start ``fn(*args, **kwargs)`` in ``context`` on a task thread; ``done`` is called on
        the event loop when it returns or raises."""
        self._inbox.put((done, context, fn, args, kwargs))

    def stop(self) -> None:
        """Let idle threads end; a thread still running a call ends when the call returns."""
        for _ in self._threads:
            self._inbox.put(_STOP)

    def _serve(self) -> None:
        while (item := self._inbox.get()) is not _STOP:
            done, context, fn, args, kwargs = item
            try:
                outcome: tuple[Done, bool, Any] = (done, True, context.run(fn, *args, **kwargs))
            except BaseException as exc:  # handed to the loop, whatever it is
                outcome = (done, False, exc)
            self._finished.append(outcome)
            if not self._signalled:
                self._signalled = True
                try:
                    self._loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: nobody awaits this call any more
                    return

    def _deliver(self) -> None:
        # reset before draining: a call finishing during the drain signals again, so none is
        # left behind; a call that saw the flag still set is drained below
        self._signalled = False
        while self._finished:
            done, ok, value = self._finished.popleft()
            try:
                done(ok, value)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception:  # one bad callback must not strand the rest of the batch
                log.exception("recording the end of a task call failed")
