"""Contract: leases and tokens, and what ack, retry, bury, extend and recover do with them."""

from __future__ import annotations

import time
from typing import Any

from taskq.brokers.base import Ack, Bury, Failure, Lease, RetryLater

from .brokerkit import FAILURE, LONG_LEASE_MS, claim_one, ids, item, now_ms


def _stale(lease: Lease) -> Lease:
    return Lease(lease.queue, lease.job_id, lease.token + 1000)


def test_extend_renews_the_lease(broker: Any) -> None:
    broker.enqueue([item("a")])
    job = claim_one(broker, lease_ms=200)
    time.sleep(0.1)
    assert broker.extend([job.lease], 400) == [True]
    time.sleep(0.2)  # past the first lease, within the renewed one
    assert broker.recover(["q"]) == 0
    assert broker.get("q", "a").lease_until_ms >= now_ms() + 100
    assert broker.ack([Ack(job.lease)]) == [True]


def test_extend_is_refused_once_the_lease_expired(broker: Any) -> None:
    broker.enqueue([item("a")])
    job = claim_one(broker, lease_ms=50)
    time.sleep(0.1)
    assert broker.extend([job.lease], 10_000) == [False]  # even before anyone recovered it


def test_extend_is_refused_for_a_stale_token_or_a_job_not_running(broker: Any) -> None:
    broker.enqueue([item("a"), item("b")])
    job = claim_one(broker)
    assert broker.extend([_stale(job.lease), Lease("q", "b", job.lease.token)], 10_000) == [
        False,
        False,
    ]
    assert broker.extend([job.lease], 10_000) == [True]


def test_recover_makes_expired_jobs_due_with_a_new_token(broker: Any) -> None:
    broker.enqueue([item("a"), item("b")])
    old = claim_one(broker, lease_ms=50)
    claim_one(broker, lease_ms=60_000)  # b keeps its lease
    time.sleep(0.1)
    assert broker.recover(["q"]) == 1
    assert broker.recover(["q"]) == 0
    record = broker.get("q", "a")
    assert record.state == "due" and record.attempt == 1
    new = claim_one(broker)
    assert (new.job_id, new.attempt, new.crashes) == ("a", 2, 1)
    assert new.lease.token > old.lease.token
    assert broker.ack([Ack(old.lease)]) == [False]
    assert broker.retry([RetryLater(old.lease, 0, FAILURE)]) == [False]
    assert broker.bury([Bury(old.lease, FAILURE)]) == [False]
    assert broker.extend([old.lease], 10_000) == [False]
    assert broker.ack([Ack(new.lease)]) == [True]


def test_claim_recovers_expired_leases_itself(broker: Any) -> None:
    broker.enqueue([item("a")])
    first = claim_one(broker, lease_ms=50)
    assert broker.claim(["q"], 10, 50, "w").jobs == []
    time.sleep(0.1)
    second = claim_one(broker, lease_ms=50)
    assert (second.attempt, second.crashes) == (2, 1)
    assert second.lease.token > first.lease.token
    time.sleep(0.1)
    third = claim_one(broker)
    assert (third.attempt, third.crashes) == (3, 2)


def test_recover_only_touches_the_queues_named(broker: Any) -> None:
    broker.enqueue([item("a", "q"), item("b", "r")])
    claim_one(broker, "q", lease_ms=50)
    claim_one(broker, "r", lease_ms=50)
    time.sleep(0.1)
    assert broker.recover(["q"]) == 1
    assert broker.counts("r").running == 1


def test_ack_keeps_the_result_for_its_ttl(broker: Any) -> None:
    broker.enqueue([item("a")])
    job = claim_one(broker)
    assert broker.ack([Ack(job.lease, b"\x93result", 200)]) == [True]
    record = broker.get("q", "a")
    assert (record.state, record.result) == ("succeeded", b"\x93result")
    assert broker.counts("q") == broker.counts("empty")
    time.sleep(0.3)
    expired = broker.get("q", "a")
    assert (expired.state, expired.result, expired.result_kept) == ("succeeded", None, True)


def test_ack_without_result_keeps_only_a_finished_record(broker: Any) -> None:
    broker.enqueue([item("a"), item("b")])
    a, b = claim_one(broker), claim_one(broker)
    before = now_ms()
    assert broker.ack([Ack(a.lease), Ack(b.lease, b"kept-for-zero-ms", 0)]) == [True, True]
    for job_id in ("a", "b"):
        record = broker.get("q", job_id)
        assert (record.state, record.body, record.result, record.result_kept) == (
            "succeeded",
            None,
            None,
            False,
        )
        assert (record.attempt, record.worker) == (1, "worker-1")
        assert before - 50 <= record.finished_at_ms <= now_ms() + 50
    assert broker.counts("q").running == 0


def test_ack_twice_or_with_a_stale_token_is_refused(broker: Any) -> None:
    broker.enqueue([item("a"), item("b")])
    a, b = claim_one(broker), claim_one(broker)
    assert broker.ack([Ack(a.lease), Ack(_stale(b.lease))]) == [True, False]
    assert broker.ack([Ack(a.lease)]) == [False]
    assert broker.get("q", "b").state == "running"
    # twice in one batch: the first ends the lease, so the second is refused
    assert broker.ack([Ack(b.lease), Ack(b.lease)]) == [True, False]


def test_one_ack_batch_finishes_many_jobs_and_keeps_each_ones_result(broker: Any) -> None:
    """Past a thousand jobs, so a batched script splits its calls (Lua's stack is bounded)."""
    n = 2500
    broker.enqueue([item(f"j{i}") for i in range(n)])
    jobs = broker.claim(["q"], n, LONG_LEASE_MS, "worker-1").jobs
    assert len(jobs) == n
    acks = [Ack(j.lease, b"r" if i % 2 else None, 60_000) for i, j in enumerate(jobs)]
    assert broker.ack(acks) == [True] * n
    assert broker.counts("q").running == 0
    for i in (0, 1, n - 1):
        record = broker.get("q", jobs[i].lease.job_id)
        assert (record.state, record.result_kept, record.attempt) == ("succeeded", bool(i % 2), 1)


def test_retry_after_a_delay_stores_the_failure(broker: Any) -> None:
    broker.enqueue([item("a")])
    job = claim_one(broker)
    assert broker.retry([RetryLater(job.lease, 150, FAILURE)]) == [True]
    record = broker.get("q", "a")
    assert (record.state, record.attempt, record.failure) == ("scheduled", 1, FAILURE)
    assert broker.claim(["q"], 1, 1000, "w").jobs == []
    time.sleep(0.2)
    again = claim_one(broker)
    assert (again.attempt, again.crashes) == (2, 0)
    assert broker.retry([RetryLater(job.lease, 0)]) == [False]  # the first claim's lease is spent
    # A retry without a failure keeps the last one.
    assert broker.retry([RetryLater(again.lease, 0)]) == [True]
    assert broker.get("q", "a").failure == FAILURE
    newer = Failure("KeyError", "'x'", "", "failed")
    assert broker.retry([RetryLater(claim_one(broker).lease, 0, newer)]) == [True]
    assert broker.get("q", "a").failure == newer


def test_retry_without_counting_the_attempt(broker: Any) -> None:
    broker.enqueue([item("a")])
    job = claim_one(broker)
    assert broker.retry([RetryLater(job.lease, 0, count_attempt=False)]) == [True]
    assert broker.get("q", "a").attempt == 0
    assert claim_one(broker).attempt == 1


def test_bury_moves_the_job_to_dead(broker: Any) -> None:
    broker.enqueue([item("a")])
    job = claim_one(broker)
    exhausted = Failure("RuntimeError", "no more", "tb", "exhausted")
    assert broker.bury([Bury(job.lease, exhausted), Bury(_stale(job.lease), FAILURE)]) == [
        True,
        False,
    ]
    record = broker.get("q", "a")
    assert (record.state, record.failure, record.attempt) == ("dead", exhausted, 1)
    assert record.body == b"body-a"
    assert broker.claim(["q"], 10, 1000, "w").next_due_ms is None
    assert broker.ack([Ack(job.lease)]) == [False]
    assert broker.bury([Bury(job.lease, exhausted)]) == [False]


def test_a_recovered_job_goes_back_ahead_of_the_jobs_that_waited_behind_it(broker: Any) -> None:
    # a dead worker's jobs were claimed from the head of the line: recovered, they go back there,
    # not behind the backlog (with 50,000 jobs waiting they ran 11-19 s after a 2 s lease)
    broker.enqueue([item("a"), item("b")])
    claimed = broker.claim(["q"], 2, 50, "worker-1").jobs
    assert ids(claimed) == ["a", "b"]
    broker.enqueue([item(f"w{n}") for n in range(5)])  # the backlog, due before the leases end
    broker.enqueue([item("later", delay_ms=60_000)])  # scheduled: not ahead of anything
    time.sleep(0.1)
    assert broker.recover(["q"]) == 2
    assert [r.job_id for r in broker.jobs("q", "due")][:2] == ["a", "b"]
    order = ids(broker.claim(["q"], 10, LONG_LEASE_MS, "worker-2").jobs)
    assert order == ["a", "b", "w0", "w1", "w2", "w3", "w4"]


def test_a_claim_recovering_a_job_takes_it_before_the_backlog(broker: Any) -> None:
    broker.enqueue([item("a")])
    claim_one(broker, lease_ms=50)
    broker.enqueue([item(f"w{n}") for n in range(3)])
    time.sleep(0.1)
    assert ids(broker.claim(["q"], 2, LONG_LEASE_MS, "worker-2").jobs) == ["a", "w0"]


def test_a_job_handed_back_goes_back_ahead_of_the_jobs_that_waited_behind_it(broker: Any) -> None:
    broker.enqueue([item("a"), item("b"), item("c")])
    claimed = broker.claim(["q"], 2, LONG_LEASE_MS, "worker-1").jobs
    broker.enqueue([item("w0"), item("w1")])
    # a stopping worker hands back what it holds, its attempts not counted: first in line again,
    # in the order given; a retry without backoff (an attempt counted) goes to the end
    handed_back = [RetryLater(job.lease, 0, count_attempt=False) for job in claimed]
    assert broker.retry(handed_back) == [True, True]
    assert ids(broker.claim(["q"], 10, LONG_LEASE_MS, "worker-2").jobs) == [
        "a",
        "b",
        "c",
        "w0",
        "w1",
    ]


def test_a_retry_without_backoff_goes_to_the_end_of_the_line(broker: Any) -> None:
    broker.enqueue([item("a"), item("b")])
    job = claim_one(broker)
    assert broker.retry([RetryLater(job.lease, 0, FAILURE)]) == [True]
    assert ids(broker.claim(["q"], 10, LONG_LEASE_MS, "worker-2").jobs) == ["b", "a"]
