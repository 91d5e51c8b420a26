"""A model of the broker protocol, checked by hypothesis against memory, SQLite and Redis: after
every step each job is in exactly the state the model says, with the attempts it says."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from taskq.brokers import Retention
from taskq.brokers.base import Ack, Bury, EnqueueItem, Failure, Lease, RetryLater
from taskq.brokers.memory import MemoryBroker
from taskq.brokers.sqlite import SQLiteBroker
from tests.conftest import REDIS_URL, delete_namespace, redis_or_skip

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

Q = "q"
HOUR_MS = 3_600_000
LONG_MS = 60_000  # a lease that never ends during a test
FAILURE = Failure("RuntimeError", "boom", "", "failed")
EXAMPLES = {"memory": 200, "sqlite": 60, "redis": 60}


class Clock:
    """The embedded brokers' clock: it moves only when the model says time passes."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Model:
    """What the model expects of one job."""

    state: str  # due | scheduled | running | dead | done | cancelled
    attempts: int = 0
    crashes: int = 0
    token: int | None = None
    doomed: bool = False  # claimed with a lease that has already ended
    result: bytes | None = None
    stale: list[int] = field(default_factory=list)  # tokens it held before


class BrokerModel(RuleBasedStateMachine):
    """Random walks over the broker verbs, checked against :class:`Model` after each step."""

    backend = "memory"
    tmp_path = Path(".")

    def __init__(self) -> None:
        super().__init__()
        self.namespace = f"model-{uuid.uuid4().hex[:10]}"
        self.clock = Clock()
        self.broker = open_for(self.backend, self.namespace, self.clock, self.tmp_path)
        self.jobs: dict[str, Model] = {}
        self.next_id = 0

    def teardown(self) -> None:
        self.broker.close()
        if self.backend == "redis":
            client = redis_or_skip()
            delete_namespace(client, self.namespace)
            client.close()

    def pass_time(self) -> None:
        """Long enough for a 1 ms lease to end (by the broker's clock)."""
        if self.backend == "redis":
            time.sleep(0.003)
        else:
            self.clock.now += 0.003

    def ids(self, *states: str) -> list[str]:
        return [i for i, m in self.jobs.items() if m.state in states]

    def recover_model(self) -> int:
        doomed = [m for m in self.jobs.values() if m.state == "running" and m.doomed]
        for m in doomed:
            self._leave_running(m, "due")
            m.crashes += 1
        return len(doomed)

    def _leave_running(self, m: Model, state: str) -> None:
        assert m.token is not None
        m.stale.append(m.token)
        m.state, m.token, m.doomed = state, None, False

    def lease(self, job_id: str) -> Lease:
        token = self.jobs[job_id].token
        assert token is not None
        return Lease(Q, job_id, token)

    # -- rules -------------------------------------------------------------------------

    @rule(delayed=st.booleans())
    def enqueue_new(self, delayed: bool) -> None:
        job_id = f"j{self.next_id}"
        self.next_id += 1
        item = EnqueueItem(Q, job_id, job_id.encode(), HOUR_MS if delayed else 0)
        assert self.broker.enqueue([item]) == [True]
        self.jobs[job_id] = Model("scheduled" if delayed else "due")

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def enqueue_again(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        m = self.jobs[job_id]
        written = m.state in ("dead", "done", "cancelled")
        item = EnqueueItem(Q, job_id, job_id.encode())
        assert self.broker.enqueue([item]) == [written], (job_id, m)
        if written:
            self.jobs[job_id] = Model("due", stale=m.stale + ([m.token] if m.token else []))

    @rule(limit=st.integers(1, 3), doomed=st.booleans(), ahead=st.booleans())
    def claim(self, limit: int, doomed: bool, ahead: bool) -> None:
        self.recover_model()
        due = set(self.ids("due"))
        soon = set(self.ids("scheduled")) if ahead else set()  # claimed ahead: after the due
        ahead_ms = 2 * HOUR_MS if ahead else 0
        batch = self.broker.claim([Q], limit, 1 if doomed else LONG_MS, "w", ahead_ms)
        got = [c.job_id for c in batch.jobs]
        assert len(set(got)) == len(got) == min(limit, len(due) + len(soon))
        taken_due = min(limit, len(due))
        assert set(got[:taken_due]) <= due and set(got[taken_due:]) <= soon, (got, due, soon)
        for c in batch.jobs:
            assert (c.wait_ms > 0) == (c.job_id in soon), c  # a scheduled job waits ~an hour
            m = self.jobs[c.job_id]
            assert (c.attempt, c.crashes) == (m.attempts + 1, m.crashes), (c, m)
            assert c.body == c.job_id.encode()
            m.state, m.token, m.doomed = "running", c.lease.token, doomed
            m.attempts += 1
            assert c.lease.token not in m.stale, "a token was handed out twice"
        waiting = self.ids("due", "scheduled")
        assert (batch.next_due_ms is None) == (not waiting)
        if doomed:
            self.pass_time()

    @precondition(lambda self: self.ids("running"))
    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids("running")))
        renewed = self.broker.extend([self.lease(job_id)], LONG_MS)
        assert bool(renewed[0]) == (not self.jobs[job_id].doomed)

    @precondition(lambda self: self.ids("running"))
    @rule(data=st.data(), keep=st.booleans())
    def ack(self, data: st.DataObject, keep: bool) -> None:
        job_id = data.draw(st.sampled_from(self.ids("running")))
        result = f"r-{job_id}".encode() if keep else None
        ack = Ack(self.lease(job_id), result, LONG_MS if keep else 0)
        assert self.broker.ack([ack]) == [True]
        m = self.jobs[job_id]
        self._leave_running(m, "done")
        m.result = result

    @precondition(lambda self: self.ids("running"))
    @rule(data=st.data(), count=st.booleans(), delayed=st.booleans())
    def retry(self, data: st.DataObject, count: bool, delayed: bool) -> None:
        job_id = data.draw(st.sampled_from(self.ids("running")))
        delay = HOUR_MS if delayed else 0
        item = RetryLater(self.lease(job_id), delay, FAILURE, count_attempt=count)
        assert self.broker.retry([item]) == [True]
        m = self.jobs[job_id]
        self._leave_running(m, "scheduled" if delayed else "due")
        m.attempts -= 0 if count else 1

    @precondition(lambda self: self.ids("running"))
    @rule(data=st.data())
    def bury(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids("running")))
        assert self.broker.bury([Bury(self.lease(job_id), FAILURE)]) == [True]
        self._leave_running(self.jobs[job_id], "dead")

    @precondition(lambda self: any(m.stale for m in self.jobs.values()))
    @rule(data=st.data(), verb=st.sampled_from(["ack", "retry", "bury", "extend"]))
    def stale_write(self, data: st.DataObject, verb: str) -> None:
        job_id = data.draw(st.sampled_from(sorted(i for i, m in self.jobs.items() if m.stale)))
        lease = Lease(Q, job_id, data.draw(st.sampled_from(self.jobs[job_id].stale)))
        calls: dict[str, Callable[[], list[Any]]] = {
            "ack": lambda: self.broker.ack([Ack(lease, b"stale", LONG_MS)]),
            "retry": lambda: self.broker.retry([RetryLater(lease, 0, FAILURE)]),
            "bury": lambda: self.broker.bury([Bury(lease, FAILURE)]),
            "extend": lambda: self.broker.extend([lease], LONG_MS),
        }
        assert [bool(x) for x in calls[verb]()] == [False], f"stale {verb} of {job_id}"

    @rule()
    def recover(self) -> None:
        assert self.broker.recover([Q]) == self.recover_model()

    @precondition(lambda self: self.ids("due", "scheduled"))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids("due", "scheduled")))
        assert self.broker.cancel(Q, job_id) == "cancelled"
        self.jobs[job_id].state = "cancelled"

    @precondition(lambda self: self.ids("dead"))
    @rule(data=st.data())
    def requeue_dead(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(self.ids("dead")))
        assert self.broker.requeue_dead(Q, [job_id]) == 1
        m = self.jobs[job_id]
        m.state, m.attempts, m.crashes = "due", 0, 0

    # -- what must always hold ---------------------------------------------------------

    @invariant()
    def every_job_is_where_the_model_says(self) -> None:
        for job_id, m in self.jobs.items():
            record = self.broker.get(Q, job_id)
            if m.state == "done":
                assert record is None or record.state == "succeeded", (job_id, record)
                if m.result is not None:
                    assert record is not None and record.result == m.result
                continue
            if m.state == "cancelled":
                assert record is not None and record.state == "cancelled", (job_id, record)
                continue
            assert record is not None, f"{job_id} vanished; model: {m}"
            assert (record.state, record.attempt) == (m.state, m.attempts), (job_id, m)
        c = self.broker.counts(Q)
        expected = [len(self.ids(s)) for s in ("due", "scheduled", "running", "dead")]
        assert [c.due, c.scheduled, c.running, c.dead] == expected
        assert sorted(j.job_id for j in self.broker.jobs(Q, "due")) == sorted(self.ids("due"))


def machine(backend: str, tmp_path: Path) -> type[RuleBasedStateMachine]:
    """:class:`BrokerModel` bound to one backend."""
    return type(
        f"BrokerModel_{backend}", (BrokerModel,), {"backend": backend, "tmp_path": tmp_path}
    )


def open_for(backend: str, namespace: str, clock: Clock, tmp_path: Path) -> Any:
    retention = Retention()
    if backend == "memory":
        return MemoryBroker(namespace, retention, clock)
    if backend == "sqlite":
        return SQLiteBroker(f"sqlite:///{tmp_path / 'model.db'}", namespace, retention, clock)
    from taskq.brokers.redis import RedisBroker

    return RedisBroker(REDIS_URL, namespace, retention)


@pytest.mark.parametrize("backend", ["memory", "sqlite", "redis"])
def test_the_broker_protocol_follows_the_model(backend: str, tmp_path: Path) -> None:
    if backend == "redis":
        redis_or_skip().close()
    run_state_machine_as_test(
        machine(backend, tmp_path),
        settings=settings(
            max_examples=EXAMPLES[backend],
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
