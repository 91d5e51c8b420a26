"""Keep the leases of the jobs a worker holds alive, and notice the ones it lost."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

from ..brokers.base import CANCEL_REQUESTED, REFUSED, Broker, Lease
from ..errors import BrokerError
from .logs import log

# A lease is treated as lost this long before it ends by our count, so that by the time another
# worker could recover it (by the broker's clock), this worker has stopped treating it as its own.
SAFETY = 0.2  # fraction of the lease

T = TypeVar("T")  # what the worker holds a lease for (its attempt)


@dataclass
class Held(Generic[T]):
    """A lease this worker holds for ``holder``, and until when (monotonic) it is surely still
    valid."""

    lease: Lease
    holder: T
    valid_until: float
    cancel_told: bool = False  # a renewal reported a cancel request, and it was passed on


class LeaseKeeper(Generic[T]):
    """Renews every held lease in one batched call each ``lease/3`` seconds.

    Leases are held and released by the worker's claim and outcome threads, in batches, and
    renewed on its event loop: ``held`` changes only under ``_lock``, and is read from a copy
    taken under it. A lease lost is reported with ``on_lost(holder)``; the first renewal that
    reports a cancel request for a job, with ``on_cancel(holder)`` (so a running job hears of a
    cancel within about ``lease/3``).
    """

    def __init__(
        self,
        broker: Broker,
        lease_s: float,
        io: Callable[[Callable[[], list[int]]], Awaitable[list[int]]],
        on_lost: Callable[[T], None],
        on_cancel: Callable[[T], None],
    ) -> None:
        self.broker = broker
        self.lease_s = lease_s
        self.io = io
        self.on_lost = on_lost
        self.on_cancel = on_cancel
        self.held: dict[str, Held[T]] = {}
        self._lock = threading.Lock()

    def hold(self, leases: Iterable[tuple[Lease, T]], since: float) -> None:
        """Start renewing each ``(lease, holder)``, taken by a claim sent at monotonic time
        ``since``."""
        valid_until = since + self.lease_s * (1 - SAFETY)
        held = {lease.job_id: Held(lease, holder, valid_until) for lease, holder in leases}
        with self._lock:
            self.held.update(held)

    def release(self, job_ids: Sequence[str]) -> None:
        """Stop renewing these jobs' leases (their outcomes are recorded, or not ours)."""
        with self._lock:
            pop = self.held.pop
            for job_id in job_ids:
                pop(job_id, None)

    def _snapshot(self) -> list[Held[T]]:
        with self._lock:
            return list(self.held.values())

    def is_held(self, job_id: str) -> bool:
        return job_id in self.held

    async def run(self) -> None:
        """Renew until cancelled; a renewal stuck on an unreachable broker does not delay the
        check that gives up leases past their safe end."""
        interval = max(self.lease_s / 3, 0.01)
        renewing: asyncio.Task[None] | None = None
        next_renewal = time.monotonic() + interval
        try:
            while True:
                # wake at a lease's safe end too: checked only every lease/3, a lease cut off
                # from the broker was given up as late as 0.8 + 1/3 of a lease, after another
                # worker could reclaim its job (tests/faults/test_fencing.py caught it)
                ends = [h.valid_until for h in self._snapshot()]
                await asyncio.sleep(max(min([next_renewal, *ends]) - time.monotonic(), 0.001))
                self.expire_overdue()
                if time.monotonic() < next_renewal:
                    continue
                next_renewal = time.monotonic() + interval
                if renewing is None or renewing.done():
                    renewing = asyncio.create_task(self.renew())
        finally:
            if renewing is not None:
                renewing.cancel()

    async def renew(self) -> None:
        """One round: extend every held lease; give up those refused or past their safe end."""
        held = self._snapshot()
        if not held:
            return
        sent = time.monotonic()
        leases = [h.lease for h in held]
        lease_ms = int(self.lease_s * 1000)
        try:
            renewed = await self.io(partial(self.broker.extend, leases, lease_ms))
        except BrokerError as exc:
            log.warning("cannot renew %d lease(s): %s", len(held), exc)
            renewed = [REFUSED] * len(held)
            answered = False
        else:
            answered = True
        for h, ok in zip(held, renewed, strict=True):
            if self.held.get(h.lease.job_id) is not h:
                continue  # finished while we were renewing
            if ok:
                h.valid_until = sent + self.lease_s * (1 - SAFETY)
                if ok == CANCEL_REQUESTED and not h.cancel_told:
                    h.cancel_told = True
                    self.on_cancel(h.holder)
            elif answered or time.monotonic() >= h.valid_until:
                self._lose(h, "refused by the broker" if answered else "not renewed in time")

    def expire_overdue(self) -> None:
        """Give up every lease past its safe end (called when the broker is unreachable)."""
        now = time.monotonic()
        for h in self._snapshot():
            if now >= h.valid_until:
                self._lose(h, "not renewed in time")

    def _lose(self, h: Held[T], why: str) -> None:
        with self._lock:
            if self.held.get(h.lease.job_id) is not h:
                return  # released (its outcome recorded) meanwhile
            del self.held[h.lease.job_id]
        if log.isEnabledFor(logging.WARNING):
            log.warning(
                "lost the lease of job %s (%s): another worker may run it; its outcome here is "
                "not recorded",
                h.lease.job_id,
                why,
                extra={"event": "lost", "job_id": h.lease.job_id, "queue": h.lease.queue},
            )
        self.on_lost(h.holder)
