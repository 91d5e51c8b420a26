"""The Redis due list: ids and due times stay twins; only an empty list wakes the workers."""

from __future__ import annotations

import time

import pytest
import redis

from taskq import App
from taskq.brokers import redis_inspect
from taskq.brokers.base import Bury, EnqueueItem, RetryLater
from taskq.brokers.redis_keys import QueueKeys

from .brokers.brokerkit import FAILURE, item


def _due_list(client: redis.Redis, k: QueueKeys) -> list[tuple[str, int]]:
    ids = [i.decode() for i in client.lrange(k.due, 0, -1)]  # type: ignore[union-attr]
    times = [int(t) for t in client.lrange(k.due_at, 0, -1)]  # type: ignore[union-attr]
    assert len(ids) == len(times)
    assert times == sorted(times)
    return list(zip(ids, times, strict=True))


def test_every_way_into_and_out_of_the_due_list_keeps_ids_and_due_times_twins(
    redis_app: App, redis_client: redis.Redis, namespace: str
) -> None:
    broker = redis_app.broker
    k = QueueKeys(namespace, "q")
    broker.enqueue([item(f"j{n}") for n in range(6)])  # one batch
    broker.enqueue([item("one")])  # the single-job path
    assert [i for i, _ in _due_list(redis_client, k)] == [*(f"j{n}" for n in range(6)), "one"]
    assert broker.cancel("q", "j3") == "cancelled"
    first, second, lost, dead = broker.claim(["q"], 4, 50, "w").jobs
    assert [first.job_id, second.job_id, lost.job_id, dead.job_id] == ["j0", "j1", "j2", "j4"]
    assert broker.retry([RetryLater(first.lease, 0)]) == [True]  # no backoff: due now
    assert broker.retry([RetryLater(second.lease, 60_000)]) == [True]  # a backoff: scheduled
    assert broker.bury([Bury(dead.lease, FAILURE)]) == [True]
    assert broker.requeue_dead("q", ["j4"]) == 1
    time.sleep(0.06)
    assert broker.recover(["q"]) == 1  # j2's lease ended: back at the head, as before its claim
    due = _due_list(redis_client, k)
    assert [i for i, _ in due] == ["j2", "j5", "one", "j0", "j4"]
    assert [broker.get("q", i).due_at_ms for i, _ in due] == [t // 1000 for _, t in due]
    assert broker.get("q", "j1").state == "scheduled"
    assert broker.counts("q").due == 5
    claimed = broker.claim(["q"], 10, 30_000, "w").jobs
    assert [c.job_id for c in claimed] == ["j2", "j5", "one", "j0", "j4"]
    assert _due_list(redis_client, k) == []
    broker.enqueue([item("k")])
    handed_back = [RetryLater(c.lease, 0, count_attempt=False) for c in claimed[:2]]
    assert broker.retry(handed_back) == [True, True]  # a stopping worker's: back at the head
    assert [i for i, _ in _due_list(redis_client, k)] == ["j2", "j5", "k"]
    assert [c.job_id for c in broker.claim(["q"], 10, 30_000, "w").jobs] == ["j2", "j5", "k"]


def test_only_a_job_that_finds_the_due_list_empty_wakes_the_workers(
    redis_app: App, redis_client: redis.Redis, namespace: str
) -> None:
    broker = redis_app.broker
    k = QueueKeys(namespace, "q")
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(k.wake)
    try:
        pubsub.get_message(timeout=1)  # the subscription's confirmation

        def heard() -> list[bytes]:
            messages = []
            while message := pubsub.get_message(timeout=0.2):
                messages.append(message["data"])
            return messages

        for n in range(3):
            broker.enqueue([item(f"a{n}")])
        assert heard() == [b"0"]  # the first found the list empty; a claim tells of the others
        broker.enqueue([EnqueueItem("q", "b", b"x"), EnqueueItem("q", "c", b"y")])
        assert heard() == []
        assert len(broker.claim(["q"], 2, 30_000, "w").jobs) == 2
        assert broker.claim(["q"], 2, 30_000, "w").next_due_ms == 0  # more are due: claim again
        broker.claim(["q"], 10, 30_000, "w")
        broker.enqueue([item("d")])
        broker.enqueue([item("later", delay_ms=5000)])  # a due time of its own always tells
        (now, later) = heard()
        assert now == b"0" and 4000 < int(later) <= 5000
    finally:
        pubsub.close()


def test_a_due_job_far_down_the_list_is_due_without_a_due_time(
    redis_app: App, redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_inspect, "DUE_TIME_SCAN", 3)  # looked up among the first 3 only
    broker = redis_app.broker
    broker.enqueue([item(f"j{n}") for n in range(5)])
    near, far = broker.get("q", "j2"), broker.get("q", "j3")
    assert (near.state, far.state) == ("due", "due")
    assert near.due_at_ms is not None and far.due_at_ms is None
    assert far.body == b"body-j3"
    dues = dict(_due_list(redis_client, QueueKeys(namespace, "q")))
    assert broker.cancel("q", "j3") == "cancelled"  # a cancel finds it anywhere in the list
    assert broker.get("q", "j3").state == "cancelled"
    del dues["j3"]  # removed from the tail's side: both lists lose the same entry
    assert _due_list(redis_client, QueueKeys(namespace, "q")) == list(dues.items())
    assert broker.get("q", "nothing") is None
