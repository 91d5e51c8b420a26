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


class Heartbeat:
    """Refreshes the worker's record every ``heartbeat`` seconds; it expires after three misses."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.inspector = cast(Inspector, worker.broker)
        self.started_at_ms = int(time.time() * 1000)

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
                await self.worker.io(partial(self.inspector.heartbeat, info, ttl_ms))
            except BrokerError as exc:
                log.debug("heartbeat failed: %s", exc)
            await asyncio.sleep(interval)

    async def forget(self) -> None:
        with contextlib.suppress(BrokerError, RuntimeError):
            await self.worker.io(partial(self.inspector.forget_worker, self.worker.id))
