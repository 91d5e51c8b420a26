"""Contract: enqueue idempotency by id, due order, scheduling and claim batches."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from taskq.brokers.base import Ack, Bury, EnqueueItem, Lease

from .brokerkit import FAILURE, LONG_LEASE_MS, claim_one, ids, item, now_ms


def test_claim_returns_body_first_attempt_and_no_crashes(broker: Any) -> None:
    assert broker.enqueue([item("a")]) == [True]
    job = claim_one(broker)
    assert (job.job_id, job.queue, job.body) == ("a", "q", b"body-a")
    assert (job.attempt, job.crashes) == (1, 0)


def test_enqueue_refuses_an_id_that_is_waiting(broker: Any) -> None:
    assert broker.enqueue([item("a", delay_ms=60_000)]) == [True]
    assert broker.enqueue([EnqueueItem("q", "a", b"other")]) == [False]
    assert broker.get("q", "a").body == b"body-a"
    assert broker.get("q", "a").state == "scheduled"  # the refused write changed nothing


def test_enqueue_refuses_a_repeated_id_within_one_batch(broker: Any) -> None:
    assert broker.enqueue([item("a"), item("b"), EnqueueItem("q", "a", b"x")]) == [
        True,
        True,
        False,
    ]
    assert broker.counts("q").due == 2


def test_enqueue_refuses_an_id_that_is_running(broker: Any) -> None:
    broker.enqueue([item("a")])
    claim_one(broker)
    assert broker.enqueue([item("a")]) == [False]
    assert broker.counts("q").due == 0


def test_same_id_in_another_queue_is_another_job(broker: Any) -> None:
    assert broker.enqueue([item("a", queue="q"), item("a", queue="r")]) == [True, True]


def test_id_reused_after_ack_is_a_new_job_with_new_token(broker: Any) -> None:
    broker.enqueue([item("a")])
    first = claim_one(broker)
    assert broker.ack([Ack(first.lease, b"result", 60_000)]) == [True]
    assert broker.enqueue([item("a")]) == [True]
    assert broker.get("q", "a").state == "due"  # the new job, not the old result
    second = claim_one(broker)
    assert (second.attempt, second.crashes) == (1, 0)
    assert second.lease.token != first.lease.token
    assert broker.ack([Ack(first.lease)]) == [False]  # a lease of the old job stays stale


def test_id_of_a_dead_job_may_be_enqueued_again(broker: Any) -> None:
    broker.enqueue([item("a")])
    assert broker.bury([Bury(claim_one(broker).lease, FAILURE)]) == [True]
    assert broker.enqueue([item("a")]) == [True]
    assert broker.get("q", "a").state == "due"
    assert broker.counts("q").dead == 0
    assert claim_one(broker).attempt == 1


def test_an_id_given_twice_in_one_batch_is_written_once(broker: Any) -> None:
    broker.enqueue([item("dead")])
    assert broker.bury([Bury(claim_one(broker).lease, FAILURE)]) == [True]
    first, second = item("a"), replace(item("a"), body=b"second")
    batch = [first, second, item("b"), item("dead"), replace(item("dead"), body=b"again")]
    assert broker.enqueue(batch) == [True, False, True, True, False]
    jobs = broker.claim(["q"], 10, LONG_LEASE_MS, "w").jobs
    assert sorted((c.job_id, c.body) for c in jobs) == [
        ("a", first.body),
        ("b", item("b").body),
        ("dead", item("dead").body),
    ]
    assert broker.counts("q").dead == 0


def test_claim_takes_oldest_due_first(broker: Any) -> None:
    now = now_ms()
    dues = {"a": now - 3000, "b": now - 2000, "c": now - 1000, "d": now - 500}
    shuffled = list(dues)
    random.shuffle(shuffled)
    broker.enqueue([item(j, due_at_ms=dues[j]) for j in shuffled])
    batch = broker.claim(["q"], 10, LONG_LEASE_MS, "w")
    assert ids(batch.jobs) == ["a", "b", "c", "d"]
    assert batch.next_due_ms is None


def test_jobs_due_when_written_and_jobs_due_at_a_time_are_claimed_in_one_due_order(
    broker: Any,
) -> None:
    now = now_ms()
    broker.enqueue([item("now1")])
    time.sleep(0.005)
    broker.enqueue([item("past", due_at_ms=now - 1000), item("soon", delay_ms=20)])
    broker.enqueue([item("now2")])
    assert ids(broker.jobs("q", "due")) == ["past", "now1", "now2"]
    assert ids(broker.jobs("q", "due", offset=1, limit=1)) == ["now1"]
    first = broker.get("q", "now1").due_at_ms
    assert now - 50 <= first <= broker.get("q", "now2").due_at_ms <= now_ms()
    assert ids(broker.claim(["q"], 2, LONG_LEASE_MS, "w").jobs) == ["past", "now1"]
    time.sleep(0.03)
    # "soon" became due before "later" was written, after "now2" was
    broker.enqueue([item("later")])
    assert ids(broker.claim(["q"], 10, LONG_LEASE_MS, "w").jobs) == ["now2", "soon", "later"]


def test_a_cancel_in_the_middle_of_the_due_jobs_keeps_the_others_in_order(broker: Any) -> None:
    for n in range(5):
        broker.enqueue([item(f"j{n}")])
    dues = {f"j{n}": broker.get("q", f"j{n}").due_at_ms for n in range(5)}
    assert broker.cancel("q", "j2") == "cancelled"
    assert broker.cancel("q", "j2") is None
    assert {f"j{n}": broker.get("q", f"j{n}").due_at_ms for n in (0, 1, 3, 4)} == {
        k: v for k, v in dues.items() if k != "j2"
    }
    assert broker.counts("q").due == 4
    assert ids(broker.claim(["q"], 10, LONG_LEASE_MS, "w").jobs) == ["j0", "j1", "j3", "j4"]
    assert broker.claim(["q"], 10, LONG_LEASE_MS, "w").next_due_ms is None


def test_scheduled_job_is_claimed_only_once_due(broker: Any) -> None:
    broker.enqueue([item("a", delay_ms=150)])
    assert broker.get("q", "a").state == "scheduled"
    batch = broker.claim(["q"], 10, LONG_LEASE_MS, "w")
    assert batch.jobs == []
    assert (
        batch.next_due_ms is not None and 0 < batch.next_due_ms <= 151
    )  # the delay counts from the next ms
    time.sleep(0.2)
    assert broker.get("q", "a").state == "due"
    assert ids(broker.claim(["q"], 10, LONG_LEASE_MS, "w").jobs) == ["a"]


def test_a_claim_ahead_takes_jobs_due_soon_after_the_due_ones_saying_how_long_to_wait(
    broker: Any,
) -> None:
    now = now_ms()
    broker.enqueue([item("later", due_at_ms=now + 60_000), item("soon", due_at_ms=now + 2000)])
    broker.enqueue([item("due", due_at_ms=now - 1000)])
    batch = broker.claim(["q"], 10, LONG_LEASE_MS, "w", ahead_ms=10_000)
    assert ids(batch.jobs) == ["due", "soon"]
    due, soon = batch.jobs
    assert due.wait_ms == 0
    assert 1000 < soon.wait_ms <= 2000, soon.wait_ms  # by the broker's clock: never early
    assert broker.get("q", "soon").state == "running"  # held under its lease until then
    assert broker.get("q", "later").state == "scheduled"
    assert batch.next_due_ms is not None and batch.next_due_ms > 50_000
    assert broker.claim(["q"], 10, LONG_LEASE_MS, "w").jobs == []  # without ahead: not yet


def test_due_at_ms_wins_over_delay_ms(broker: Any) -> None:
    now = now_ms()
    broker.enqueue([item("past", delay_ms=60_000, due_at_ms=now - 1000)])
    broker.enqueue([item("future", delay_ms=0, due_at_ms=now + 60_000)])
    assert broker.get("q", "past").due_at_ms == now - 1000
    assert broker.get("q", "future").due_at_ms == now + 60_000
    assert broker.get("q", "future").state == "scheduled"
    assert ids(broker.claim(["q"], 10, LONG_LEASE_MS, "w").jobs) == ["past"]


def test_delay_is_counted_from_the_brokers_now(broker: Any) -> None:
    before = now_ms()
    broker.enqueue([item("a", delay_ms=10_000)])
    due = broker.get("q", "a").due_at_ms
    assert before + 10_000 - 50 <= due <= now_ms() + 10_000 + 50


def test_claim_limit_and_queue_order(broker: Any) -> None:
    now = now_ms()
    # b's jobs are older, but the first queue listed is served first.
    broker.enqueue([item("b1", "b", due_at_ms=now - 9000), item("b2", "b", due_at_ms=now - 8000)])
    broker.enqueue([item("a1", "a", due_at_ms=now - 2000), item("a2", "a", due_at_ms=now - 1000)])
    batch = broker.claim(["a", "b"], 3, LONG_LEASE_MS, "w")
    assert ids(batch.jobs) == ["a1", "a2", "b1"]
    assert [job.queue for job in batch.jobs] == ["a", "a", "b"]
    assert batch.next_due_ms == 0  # b2 is due now


def test_next_due_ms_is_none_when_nothing_waits(broker: Any) -> None:
    assert broker.claim(["q"], 10, LONG_LEASE_MS, "w").next_due_ms is None
    broker.enqueue([item("a")])
    batch = broker.claim(["q"], 10, LONG_LEASE_MS, "w")
    assert (ids(batch.jobs), batch.next_due_ms) == (["a"], None)


def test_next_due_ms_looks_at_every_queue_claimed_from(broker: Any) -> None:
    broker.enqueue([item("late", "b", delay_ms=10_000), item("later", "a", delay_ms=20_000)])
    batch = broker.claim(["a", "b"], 10, LONG_LEASE_MS, "w")
    assert batch.jobs == []
    # a delay counts from the next whole ms, hence 10_001
    assert batch.next_due_ms is not None and 9_000 < batch.next_due_ms <= 10_001


def test_claim_sets_the_lease(broker: Any) -> None:
    broker.enqueue([item("a")])
    before = now_ms()
    job = claim_one(broker, lease_ms=5_000)
    record = broker.get("q", "a")
    assert record.state == "running"
    assert before + 5_000 - 50 <= record.lease_until_ms <= now_ms() + 5_000 + 50
    assert record.attempt == job.attempt == 1
    assert isinstance(job.lease, Lease)


def test_concurrent_claims_never_hand_out_a_job_twice(broker: Any) -> None:
    broker.enqueue([item(f"j{n}") for n in range(200)])

    def claim_all(worker: str) -> list[str]:
        claimed: list[str] = []
        while batch := broker.claim(["q"], 7, LONG_LEASE_MS, worker).jobs:
            assert broker.ack([Ack(job.lease) for job in batch]) == [True] * len(batch)
            claimed += ids(batch)
        return claimed

    with ThreadPoolExecutor(4) as pool:
        results = [pool.submit(claim_all, f"w{n}") for n in range(4)]
        claimed = [job_id for result in results for job_id in result.result()]
    assert sorted(claimed) == sorted(f"j{n}" for n in range(200))
