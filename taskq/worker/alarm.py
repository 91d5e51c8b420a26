"""An awaitable alarm: sleep until a deadline that wake-ups may bring forward."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time


class Alarm:
    """Wait until ``monotonic() >= deadline``; :meth:`ring_at` brings the deadline forward."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._at = math.inf

    def ring_at(self, when: float) -> None:
        """Make a pending or future :meth:`sleep` end no later than ``when`` (monotonic seconds)."""
        if when < self._at:
            self._at = when
            self._event.set()

    def ring(self) -> None:
        """End a pending :meth:`sleep` now."""
        self.ring_at(-math.inf)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or less if rung meanwhile (or before, since the last sleep)."""
        self._at = min(self._at, time.monotonic() + seconds)
        while (left := self._at - time.monotonic()) > 0:
            self._event.clear()
            # asyncio.TimeoutError: on Python 3.10 it is not the builtin TimeoutError
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event.wait(), left)
        self._at = math.inf
