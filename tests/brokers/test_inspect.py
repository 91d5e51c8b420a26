"""Contract: the Inspector, from counts and single jobs to dead letters and heartbeats."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from taskq.brokers import Retention
from taskq.brokers.base import LISTED_STATES, Bury, QueueCounts, WorkerInfo

from .brokerkit import FAILURE, MakeBroker, claim_one, ids, item, now_ms


def _bury(broker: Any, *job_ids: str, pause: float = 0.0) -> None:
    """Enqueue, claim and bury each job in turn, ``pause`` apart so their dead times differ."""
    for job_id in job_ids:
        broker.enqueue([item(job_id)])
        assert broker.bury([Bury(claim_one(broker).lease, FAILURE)]) == [True]
        time.sleep(pause)


def test_counts_every_state(broker: Any) -> None:
    assert broker.counts("q") == QueueCounts(0, 0, 0, 0)
    _bury(broker, "dead")
    broker.enqueue([item("run1"), item("run2")])
    claim_one(broker), claim_one(broker)
    broker.enqueue([item("due1"), item("due2"), item("due3")])
    broker.enqueue([item(f"later{n}", delay_ms=60_000) for n in range(4)])
    assert broker.counts("q") == QueueCounts(due=3, scheduled=4, running=2, dead=1)


def test_get_reports_each_state(broker: Any) -> None:
    now = now_ms()
    broker.enqueue([item("scheduled", due_at_ms=now + 60_000), item("due", due_at_ms=now - 5)])
    assert broker.get("q", "scheduled").due_at_ms == now + 60_000
    due = broker.get("q", "due")
    assert (due.state, due.body, due.attempt, due.due_at_ms) == ("due", b"body-due", 0, now - 5)
    assert due.failure is None and due.result is None and due.lease_until_ms is None
    claim_one(broker)
    running = broker.get("q", "due")
    assert (running.state, running.attempt, running.due_at_ms) == ("running", 1, None)
    assert broker.get("q", "nothing") is None
    assert broker.get("other-queue", "due") is None


def test_cancel_removes_only_waiting_jobs(broker: Any) -> None:
    _bury(broker, "dead")
    now = now_ms()
    broker.enqueue([item("running", due_at_ms=now - 1000), item("due", due_at_ms=now - 500)])
    broker.enqueue([item("scheduled", delay_ms=60_000)])
    assert claim_one(broker).job_id == "running"
    assert broker.cancel("q", "scheduled") == "cancelled"
    assert broker.cancel("q", "due") == "cancelled"
    assert broker.cancel("q", "running") == "requested"
    assert broker.cancel("q", "dead") is None
    assert broker.cancel("q", "unknown") is None
    assert broker.cancel("q", "scheduled") is None
    record = broker.get("q", "scheduled")
    assert (record.state, record.body, record.attempt) == ("cancelled", None, 0)
    assert record.finished_at_ms is not None
    assert broker.counts("q") == QueueCounts(due=0, scheduled=0, running=1, dead=1)
    assert broker.claim(["q"], 10, 1000, "w").next_due_ms is None


def test_dead_lists_newest_first_with_paging(broker: Any) -> None:
    _bury(broker, "a", "b", "c", pause=0.005)
    assert ids(broker.dead("q")) == ["c", "b", "a"]
    assert ids(broker.dead("q", offset=1, limit=1)) == ["b"]
    assert ids(broker.dead("q", offset=3)) == []
    record = broker.dead("q")[0]
    assert (record.state, record.body, record.failure, record.attempt) == (
        "dead",
        b"body-c",
        FAILURE,
        1,
    )
    assert broker.dead("other") == []


@pytest.mark.parametrize(("offset", "limit"), [(0, 0), (0, -1), (-1, 10), (-1, -1), (5, 0)])
def test_a_page_with_an_offset_below_0_or_a_limit_below_1_is_refused(
    broker: Any, offset: int, limit: int
) -> None:
    _bury(broker, "a", "b")
    broker.enqueue([item("due"), item("scheduled", delay_ms=60_000)])
    claim_one(broker)
    with pytest.raises(ValueError, match="offset >= 0 and limit >= 1"):
        broker.dead("q", offset, limit)
    for state in LISTED_STATES:
        with pytest.raises(ValueError, match="offset >= 0 and limit >= 1"):
            broker.jobs("q", state, offset, limit)
    assert ids(broker.dead("q", 0, 1)) == ["b"] and ids(broker.dead("q", 2, 1)) == []


def test_requeue_dead_makes_jobs_due_with_fresh_attempts(broker: Any) -> None:
    broker.enqueue([item("a")])
    claim_one(broker, lease_ms=50)
    time.sleep(0.1)  # one crash first, to see crashes reset too
    assert broker.bury([Bury(claim_one(broker).lease, FAILURE)]) == [True]
    _bury(broker, "b")
    assert broker.requeue_dead("q", ["a", "missing", "a"]) == 1
    record = broker.get("q", "a")
    assert (record.state, record.attempt, record.failure) == ("due", 0, FAILURE)
    assert ids(broker.dead("q")) == ["b"]
    job = claim_one(broker)
    assert (job.job_id, job.attempt, job.crashes) == ("a", 1, 0)
    assert broker.requeue_dead("q", ["a"]) == 0  # running, not dead


def test_purge_dead(broker: Any) -> None:
    _bury(broker, "a", "b")
    broker.enqueue([item("waiting")])
    assert broker.purge_dead("q") == 2
    assert broker.purge_dead("q") == 0
    assert broker.dead("q") == []
    assert broker.counts("q") == QueueCounts(due=1, scheduled=0, running=0, dead=0)


def test_dead_jobs_are_trimmed_by_count(make_broker: MakeBroker) -> None:
    broker = make_broker(retention=Retention(dead_max=3))
    _bury(broker, "a", "b", "c", "d", "e", pause=0.005)
    assert ids(broker.dead("q")) == ["e", "d", "c"]
    assert broker.counts("q").dead == 3
    assert broker.get("q", "a") is None


def test_queues_lists_every_queue_enqueued_to(broker: Any) -> None:
    assert broker.queues() == []
    broker.enqueue([item("a", "mail"), item("b", "default")])
    broker.enqueue([item("c", "mail")])
    assert sorted(broker.queues()) == ["default", "mail"]


def _info(name: str, running: int = 0) -> WorkerInfo:
    return WorkerInfo(name, "host-1", 4242, ("mail", "default"), 16, running, 1_700_000_000_000)


def test_heartbeat_registers_and_refreshes_workers(broker: Any) -> None:
    assert broker.workers() == []
    before = now_ms()
    broker.heartbeat(_info("w1"), 10_000)
    broker.heartbeat(_info("w2"), 10_000)
    found = {w.worker: w for w in broker.workers()}
    assert set(found) == {"w1", "w2"}
    assert replace(found["w1"], seen_at_ms=0) == _info("w1")
    assert before - 50 <= found["w1"].seen_at_ms <= now_ms() + 50
    broker.heartbeat(_info("w1", running=5), 10_000)
    assert {w.worker: w.running for w in broker.workers()} == {"w1": 5, "w2": 0}
    broker.forget_worker("w2")
    broker.forget_worker("never-seen")
    assert [w.worker for w in broker.workers()] == ["w1"]


def test_worker_disappears_without_heartbeats(broker: Any) -> None:
    broker.heartbeat(_info("w1"), 150)
    broker.heartbeat(_info("w2"), 10_000)
    time.sleep(0.1)
    broker.heartbeat(_info("w1"), 150)  # refreshed: lives on past its first ttl
    time.sleep(0.1)
    assert {w.worker for w in broker.workers()} == {"w1", "w2"}
    time.sleep(0.1)
    assert [w.worker for w in broker.workers()] == ["w2"]


def test_namespaces_never_see_each_other(make_broker: MakeBroker) -> None:
    one, two = make_broker(), make_broker()
    _bury(one, "dead")
    assert one.enqueue([item("a"), item("b", delay_ms=60_000)]) == [True, True]
    assert two.enqueue([item("a")]) == [True]  # the same id, another namespace
    one.heartbeat(_info("w1"), 10_000)
    assert two.queues() == ["q"] and sorted(one.queues()) == ["q"]
    assert two.counts("q") == QueueCounts(due=1, scheduled=0, running=0, dead=0)
    assert two.dead("q") == [] and two.workers() == []
    assert two.get("q", "b") is None and two.get("q", "dead") is None
    assert claim_one(two).job_id == "a"
    assert two.claim(["q"], 10, 1000, "w").jobs == []
    assert one.counts("q") == QueueCounts(due=1, scheduled=1, running=0, dead=1)
    assert one.cancel("q", "a") == "cancelled"
    assert two.get("q", "a").state == "running"
    assert two.purge_dead("q") == 0 and one.counts("q").dead == 1
