"""Announce a live worker to the broker so ``taskq info`` can list it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from functools import partial
from typing import TYPE_CHECKING, cast

from ..brokers.base import Inspector, WorkerInfo
from ..errors import BrokerError
from .logs import log

if TYPE_CHECKING:
    from .runner import Worker

FORGET_WAIT = 2.0  # seconds forget() waits for a heartbeat still on its way


class Heartbeat:
    """Refreshes the worker's record every ``heartbeat`` seconds; it expires after three misses."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.inspector = cast(Inspector, worker.broker)
        self.started_at_ms = int(time.time() * 1000)
        # a heartbeat still on its way when run() is cancelled: forget() waits for it (bounded),
        # so it neither lands after forget() nor runs on while the broker is being closed; if
        # it outlasts that wait, it undoes its own write
        self._inflight: asyncio.Task[None] | None = None
        self._forgotten = False
        # whether the last heartbeat landed: if not, forget() writes nothing (the broker is
        # unreachable, and a stop would wait out its retries; the record expires on its own)
        self._landed = False

    def info(self) -> WorkerInfo:
        o = self.worker.options
        return WorkerInfo(
            self.worker.id,
            socket.gethostname(),
            os.getpid(),
            o.queues,
            o.concurrency,
            self.worker.running,
            self.started_at_ms,
        )

    async def run(self) -> None:
        interval = self.worker.options.heartbeat
        ttl_ms = int(interval * 3000)
        while True:
            try:
                info = self.info()
                self._inflight = asyncio.create_task(
                    self.worker.io(partial(self._beat, info, ttl_ms))
                )
                self._inflight.add_done_callback(_retrieve)
                await asyncio.shield(self._inflight)
            except BrokerError as exc:
                log.debug("heartbeat failed: %s", exc)
            await asyncio.sleep(interval)

    def _beat(self, info: WorkerInfo, ttl_ms: int) -> None:
        if self._forgotten:
            return
        self._landed = False
        self.inspector.heartbeat(info, ttl_ms)
        self._landed = True
        if self._forgotten:  # forget() ran while this write was on its way: undo the write
            self.inspector.forget_worker(self.worker.id)

    def _forget(self) -> None:
        self._forgotten = True
        self.inspector.forget_worker(self.worker.id)

    async def forget(self) -> None:
        if self._inflight is not None and not self._inflight.done():
            await asyncio.wait([self._inflight], timeout=FORGET_WAIT)
        if not self._landed:  # a beat still on its way undoes its own write, should it land
            self._forgotten = True
            return
        with contextlib.suppress(BrokerError, RuntimeError):
            await self.worker.io(self._forget)


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a heartbeat's error seen (run() may have stopped awaiting it)."""
    if not task.cancelled():
        task.exception()
