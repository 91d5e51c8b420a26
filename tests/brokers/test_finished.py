"""Contract: finished records, cancel requests, job listings, end notices and per-minute counts."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from taskq.brokers import Retention
from taskq.brokers.base import (
    CANCEL_REQUESTED,
    RENEWED,
    Ack,
    Bury,
    Lease,
    RetryLater,
)

from .brokerkit import FAILURE, MakeBroker, claim_one, ids, item, now_ms


def _succeed(broker: Any, *job_ids: str) -> None:
    for job_id in job_ids:
        broker.enqueue([item(job_id)])
        assert broker.ack([Ack(claim_one(broker).lease)]) == [True]


def test_finished_records_are_trimmed_by_count(make_broker: MakeBroker) -> None:
    broker = make_broker(retention=Retention(finished_max=3))
    _succeed(broker, "a", "b", "c", "d", "e")
    assert [broker.get("q", j) is None for j in "abcde"] == [True, True, False, False, False]
    broker.enqueue([item("w1"), item("w2")])
    assert broker.cancel("q", "w1") == "cancelled"
    assert broker.get("q", "c") is None  # a cancelled job's record counts too
    assert broker.get("q", "w1").state == "cancelled"


def test_finished_records_are_trimmed_by_age(make_broker: MakeBroker) -> None:
    broker = make_broker(retention=Retention(finished_ttl_ms=100))
    _succeed(broker, "old")
    time.sleep(0.15)
    _succeed(broker, "new")  # a later finish trims the old record
    assert broker.get("q", "old") is None
    assert broker.get("q", "new").state == "succeeded"


def test_a_reused_id_starts_afresh(broker: Any) -> None:
    broker.enqueue([item("a")])
    assert broker.ack([Ack(claim_one(broker).lease, b"first", 60_000)]) == [True]
    assert broker.enqueue([item("a")]) == [True]
    assert broker.get("q", "a").state == "due"
    assert broker.ack([Ack(claim_one(broker).lease)]) == [True]
    record = broker.get("q", "a")  # the first run's result is not the second's
    assert (record.state, record.result, record.result_kept) == ("succeeded", None, False)


def test_a_cancel_of_a_running_job_is_reported_by_extend(broker: Any) -> None:
    broker.enqueue([item("a"), item("b")])
    a, b = claim_one(broker), claim_one(broker)
    assert broker.extend([a.lease, b.lease], 30_000) == [RENEWED, RENEWED]
    assert broker.cancel("q", "a") == "requested"
    assert broker.get("q", "a").cancel_requested is True
    assert broker.get("q", "a").state == "running"
    assert broker.extend([a.lease, b.lease], 30_000) == [CANCEL_REQUESTED, RENEWED]
    assert broker.ack([Ack(a.lease)]) == [True]  # it finished anyway: it succeeded
    assert broker.get("q", "a").state == "succeeded"


def test_a_retry_of_a_job_asked_to_stop_ends_it_cancelled(broker: Any) -> None:
    broker.enqueue([item("a")])
    job = claim_one(broker)
    assert broker.cancel("q", "a") == "requested"
    assert broker.retry([RetryLater(job.lease, 0, FAILURE)]) == [True]
    record = broker.get("q", "a")
    assert (record.state, record.attempt) == ("cancelled", 1)
    assert broker.claim(["q"], 10, 1000, "w").jobs == []
    assert broker.counts("q").due == 0


def test_a_buried_job_forgets_its_cancel_request(broker: Any) -> None:
    broker.enqueue([item("a")])
    job = claim_one(broker)
    broker.cancel("q", "a")
    assert broker.bury([Bury(job.lease, FAILURE)]) == [True]
    assert broker.requeue_dead("q", ["a"]) == 1
    again = claim_one(broker)
    assert broker.extend([again.lease], 30_000) == [RENEWED]


def test_jobs_lists_each_state_in_order_with_paging(broker: Any) -> None:
    now = now_ms()
    broker.enqueue([item("due2", due_at_ms=now - 10), item("due1", due_at_ms=now - 20)])
    broker.enqueue([item(f"s{n}", due_at_ms=now + 60_000 + n) for n in (3, 1, 2)])
    broker.enqueue([item("run", due_at_ms=now - 30)])
    running = claim_one(broker)
    broker.enqueue([item("d1", due_at_ms=now - 40)])
    assert broker.bury([Bury(claim_one(broker).lease, FAILURE)]) == [True]
    assert ids(broker.jobs("q", "due")) == ["due1", "due2"]
    assert ids(broker.jobs("q", "scheduled")) == ["s1", "s2", "s3"]
    assert ids(broker.jobs("q", "scheduled", offset=1, limit=1)) == ["s2"]
    assert ids(broker.jobs("q", "running")) == ["run"]
    assert ids(broker.jobs("q", "dead")) == ["d1"]
    assert broker.jobs("q", "scheduled", offset=5) == []
    assert broker.jobs("other", "due") == []
    with pytest.raises(ValueError, match="state must be one of"):
        broker.jobs("q", "succeeded")
    scheduled = broker.jobs("q", "scheduled")[0]
    assert (scheduled.state, scheduled.due_at_ms, scheduled.body) == (
        "scheduled",
        now + 60_001,
        b"body-s1",
    )
    run = broker.jobs("q", "running")[0]
    assert (run.worker, run.attempt, run.lease_until_ms is not None) == ("worker-1", 1, True)
    assert running.job_id == "run"
    dead = broker.jobs("q", "dead")[0]
    assert (dead.failure, dead.finished_at_ms is not None) == (FAILURE, True)


@pytest.mark.parametrize("end", ["ack", "bury", "cancel", "retry-cancelled"])
def test_finishes_hears_each_end_of_its_job(broker: Any, end: str) -> None:
    now = now_ms()
    broker.enqueue([item("other", due_at_ms=now - 10), item("a", due_at_ms=now - 5)])
    other = claim_one(broker) if end != "cancel" else None
    waiter = broker.finishes("q", "a")
    try:
        if other is not None:
            assert broker.ack([Ack(other.lease)]) == [True]  # another job's end: not ours
            assert waiter.wait(0.2) is False
        job = claim_one(broker) if end != "cancel" else None

        def finish() -> None:
            time.sleep(0.1)
            if end == "ack":
                broker.ack([Ack(job.lease)])
            elif end == "bury":
                broker.bury([Bury(job.lease, FAILURE)])
            elif end == "cancel":
                broker.cancel("q", "a")
            else:
                broker.cancel("q", "a")
                broker.retry([RetryLater(job.lease, 0, FAILURE)])

        thread = threading.Thread(target=finish)
        started = time.monotonic()
        thread.start()
        assert waiter.wait(5) is True
        assert time.monotonic() - started < 2
        thread.join()
    finally:
        waiter.close()


def test_finishes_times_out_quietly(broker: Any) -> None:
    broker.enqueue([item("a")])
    waiter = broker.finishes("q", "a")
    started = time.monotonic()
    assert waiter.wait(0.2) is False
    assert 0.15 <= time.monotonic() - started < 1.5
    waiter.close()


def test_rates_count_successes_and_failed_attempts_per_minute(broker: Any) -> None:
    assert [(m.succeeded, m.failed) for m in broker.rates("q", 3)] == [(0, 0)] * 3
    _succeed(broker, "a", "b")
    broker.enqueue([item("c"), item("d")])
    assert broker.retry([RetryLater(claim_one(broker).lease, 60_000, FAILURE)]) == [True]
    assert broker.bury([Bury(claim_one(broker).lease, FAILURE)]) == [True]
    broker.enqueue([item("e")])
    handed_back = RetryLater(claim_one(broker).lease, 0, count_attempt=False)
    assert broker.retry([handed_back]) == [True]  # no failure: not counted
    rates = broker.rates("q", 2)
    assert len(rates) == 2 and rates[0].minute_ms > rates[1].minute_ms
    assert rates[0].minute_ms % 60_000 == 0 and rates[0].minute_ms <= now_ms()
    assert sum(r.succeeded for r in rates) == 2  # this minute, or across its boundary
    assert sum(r.failed for r in rates) == 2
    assert len(broker.rates("q", 1000)) == 60


def test_a_refused_retry_or_bury_counts_no_failure(broker: Any) -> None:
    broker.enqueue([item("a"), item("b")])
    a, b = claim_one(broker), claim_one(broker)
    stale = Lease(a.lease.queue, a.lease.job_id, a.lease.token + 1000)
    assert broker.retry([RetryLater(stale, 0, FAILURE), RetryLater(b.lease, 0, FAILURE)]) == [
        False,
        True,
    ]
    assert broker.bury([Bury(stale, FAILURE)]) == [False]
    assert broker.retry([RetryLater(b.lease, 0, FAILURE)]) == [False]  # its lease is spent
    assert sum(r.failed for r in broker.rates("q", 2)) == 1  # b's one accepted retry
    assert broker.get("q", "a").failure is None
