"""How many jobs a worker claims beyond its slots: what they finish in two claims' time."""

from __future__ import annotations

import math

# Weight of the newest measure in each moving average. A slow job among fast ones pulls the
# average run time up at once (and the prefetch down); it takes a few dozen fast jobs to undo.
WEIGHT = 0.1
# A claimed job waits for a slot at most about this long when the jobs run as fast as they did:
# the prefetch covers this many claim round trips, so the slots never wait for one.
ROUND_TRIPS = 2.0


class Prefetch:
    """Sizes a worker's ready jobs: jobs claimed beyond its free slots, held under their leases
    and started as slots free up, so that short jobs do not wait a claim's round trip for each
    slot, and claims come in batches big enough to cost the broker little per job.

    It holds as many as the slots finish within :data:`ROUND_TRIPS` claim round trips, by the
    moving averages of both, and at most ``most``. Until a job has run it holds none, and jobs
    that run far longer than a claim's round trip get none: a slow job is not kept waiting
    while another worker has a free slot.
    """

    def __init__(self, concurrency: int, most: int) -> None:
        self.concurrency = concurrency
        self.most = most
        self.run_s: float | None = None  # moving average of a job's run time
        self.claim_s: float | None = None  # moving average of a claim's round trip

    def ran(self, seconds: float) -> None:
        """A job ran for ``seconds``."""
        self.run_s = _average(self.run_s, seconds)

    def claimed(self, seconds: float) -> None:
        """A claim's round trip took ``seconds``."""
        self.claim_s = _average(self.claim_s, seconds)

    @property
    def size(self) -> int:
        """How many ready jobs to hold now, at most ``most``."""
        if self.most == 0 or self.run_s is None or self.claim_s is None:
            return 0
        per_slot = ROUND_TRIPS * self.claim_s / max(self.run_s, 1e-6)
        return min(self.most, math.floor(self.concurrency * per_slot))


def _average(average: float | None, value: float) -> float:
    return value if average is None else average + WEIGHT * (value - average)
