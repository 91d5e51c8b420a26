"""What only the Redis broker promises beyond the contract suite."""

from __future__ import annotations

from taskq import App
from taskq.brokers.redis import RedisBroker

from .brokerkit import LONG_LEASE_MS, item


def test_the_next_due_time_comes_finer_than_a_millisecond(redis_app: App) -> None:
    """A worker sleeps until ``next_due_ms``: in whole ms it would oversleep by up to 1 ms."""
    broker = redis_app.broker
    assert isinstance(broker, RedisBroker)
    broker.enqueue([item("a", delay_ms=10_000)])
    waits = [broker.claim(["q"], 10, LONG_LEASE_MS, "w").next_due_ms for _ in range(5)]
    assert all(w is not None and 9_000 < w <= 10_001 for w in waits), waits
    # five whole numbers in a row would come one time in 10^15 from a clock counting µs
    assert any(w is not None and w % 1 for w in waits), waits
