"""How a worker runs: queues, concurrency, prefetch, lease, poll interval, grace period, mode."""

from __future__ import annotations

from dataclasses import dataclass

from ..options import DEFAULT_QUEUE, check_queue


@dataclass(frozen=True)
class WorkerOptions:
    """Settings of one worker process (the ``taskq worker`` flags)."""

    queues: tuple[str, ...] = (DEFAULT_QUEUE,)
    concurrency: int = 10
    # most jobs claimed beyond the slots, held ready for short jobs (None: 4 x concurrency)
    prefetch: int | None = None
    # seconds a claim is valid without renewal. A dead worker's jobs are due again 2/3 to 1 lease
    # after it died and start within a poll interval: 17-26 s, inside the 30 s users are promised
    # (with 30 s, it was 20-31 s)
    lease: float = 25.0
    poll_interval: float = 1.0  # longest sleep between claims; wake-ups usually come first
    grace: float = 30.0  # seconds running jobs get to finish after the first stop signal
    burst: bool = False  # exit once nothing is waiting or running
    heartbeat: float = 5.0  # seconds between announcements to ``taskq info``

    @property
    def most_ready(self) -> int:
        """Most jobs held ready beyond the slots (the prefetch's upper bound)."""
        return 4 * self.concurrency if self.prefetch is None else self.prefetch

    def __post_init__(self) -> None:
        if not self.queues:
            raise ValueError("a worker needs at least one queue")
        for queue in self.queues:
            check_queue(queue)
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.prefetch is not None and self.prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {self.prefetch}")
        if not self.lease >= 0.1:
            raise ValueError(f"lease must be >= 0.1 seconds, got {self.lease}")
        if not self.poll_interval > 0 or self.grace < 0 or not self.heartbeat > 0:
            raise ValueError("poll interval and heartbeat must be > 0, grace >= 0")
