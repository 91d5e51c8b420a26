"""The embedded brokers make every time decision with their injected clock, to the millisecond."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskq.brokers import Retention
from taskq.brokers.base import Ack, Bury, WorkerInfo
from taskq.brokers.memory import MemoryBroker
from taskq.brokers.sqlite import SQLiteBroker

from .brokerkit import FAILURE, claim_one, item


class FakeClock:
    """Seconds since the epoch that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms / 1000

    @property
    def ms(self) -> int:
        return int(self.now * 1000)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Any:
    made: list[Any] = []

    def make(retention: Retention | None = None) -> Any:
        retention = retention or Retention()
        if request.param == "memory":
            broker: Any = MemoryBroker("ns", retention, clock)
        else:
            broker = SQLiteBroker(f"sqlite:///{tmp_path / 'taskq.db'}", "ns", retention, clock)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


def test_a_job_becomes_due_at_its_due_time_never_early(make: Any, clock: FakeClock) -> None:
    broker = make()
    clock.now += 0.0009  # 0.9 ms into a millisecond: the delay counts from the next one
    broker.enqueue([item("a", delay_ms=1000)])
    assert broker.get("q", "a").due_at_ms == clock.ms + 1 + 1000
    clock.advance(1000)
    assert broker.claim(["q"], 1, 1000, "w").next_due_ms == 1
    clock.advance(1)
    assert broker.get("q", "a").state == "due"
    assert claim_one(broker).job_id == "a"


def test_a_job_claimed_ahead_waits_exactly_until_its_due_time(make: Any, clock: FakeClock) -> None:
    broker = make()
    broker.enqueue([item("a", delay_ms=100)])  # due clock.ms + 101
    clock.advance(95)
    assert broker.claim(["q"], 1, 1000, "w", ahead_ms=5).jobs == []
    (claimed,) = broker.claim(["q"], 1, 1000, "w", ahead_ms=6).jobs
    assert (claimed.job_id, claimed.wait_ms) == ("a", 6)


def test_a_job_without_delay_is_due_at_once(make: Any, clock: FakeClock) -> None:
    broker = make()
    broker.enqueue([item("a")])
    assert broker.get("q", "a").due_at_ms == clock.ms
    assert claim_one(broker).job_id == "a"


def test_a_lease_expires_after_its_last_millisecond(make: Any, clock: FakeClock) -> None:
    broker = make()
    broker.enqueue([item("a")])
    job = claim_one(broker, lease_ms=1000)
    assert broker.get("q", "a").lease_until_ms == clock.ms + 1000
    clock.advance(1000)
    assert broker.recover(["q"]) == 0
    assert broker.extend([job.lease], 1000) == [True]
    clock.advance(1001)
    assert broker.extend([job.lease], 1000) == [False]
    assert broker.recover(["q"]) == 1
    assert broker.get("q", "a").due_at_ms == clock.ms


def test_a_result_is_kept_for_its_ttl(make: Any, clock: FakeClock) -> None:
    broker = make()
    broker.enqueue([item("a")])
    broker.ack([Ack(claim_one(broker).lease, b"r", 1000)])
    clock.advance(999)
    assert broker.get("q", "a").result == b"r"
    clock.advance(1)
    expired = broker.get("q", "a")  # the finished record outlives the result
    assert (expired.state, expired.result, expired.result_kept) == ("succeeded", None, True)
    broker.claim(["q"], 1, 1000, "w")  # sweeps it for good
    assert broker.get("q", "a").result is None


def test_dead_jobs_older_than_dead_ttl_are_trimmed(make: Any, clock: FakeClock) -> None:
    broker = make(Retention(dead_ttl_ms=1000))
    broker.enqueue([item("old")])
    broker.bury([Bury(claim_one(broker).lease, FAILURE)])
    clock.advance(1001)
    broker.enqueue([item("new")])
    broker.bury([Bury(claim_one(broker).lease, FAILURE)])
    assert [job.job_id for job in broker.dead("q")] == ["new"]


def test_requeued_dead_jobs_are_due_now(make: Any, clock: FakeClock) -> None:
    broker = make()
    broker.enqueue([item("a")])
    broker.bury([Bury(claim_one(broker).lease, FAILURE)])
    clock.advance(5000)
    assert broker.requeue_dead("q", ["a"]) == 1
    assert broker.get("q", "a").due_at_ms == clock.ms


def test_heartbeats_expire_by_the_clock(make: Any, clock: FakeClock) -> None:
    broker = make()
    broker.heartbeat(WorkerInfo("w1", "h", 1, ("q",), 1, 0, 0), 1000)
    assert broker.workers()[0].seen_at_ms == clock.ms
    clock.advance(999)
    assert len(broker.workers()) == 1
    clock.advance(1)
    assert broker.workers() == []
