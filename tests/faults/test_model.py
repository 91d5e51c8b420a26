"""A model of the broker protocol, checked by hypothesis against memory, SQLite and Redis: after
every step each job is in exactly the state the model says, with the attempts, lease end and due
time it says. Time passes only when the model says so (every broker on a clock the test sets), in
steps that end leases and bring scheduled jobs due."""

from __future__ import annotations

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
from taskq.brokers.base import (
    REFUSED,
    RENEWED,
    Ack,
    Bury,
    EnqueueItem,
    Failure,
    Lease,
    RetryLater,
)
from taskq.brokers.memory import MemoryBroker
from taskq.brokers.sqlite import SQLiteBroker
from tests.conftest import REDIS_URL, delete_namespace, redis_or_skip
from tests.faults.redis_clock import Clock, RedisOnClock

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]

Q = "q"
HOUR_MS = 3_600_000
LONG_MS = 60_000  # a lease a few clock steps do not reach
STEP_MS = 5_000  # a plain step of time; none is longer than LONG_MS, so 30 stay below an hour
FAILURE = Failure("RuntimeError", "boom", "", "failed")
EXAMPLES = {"memory": 200, "sqlite": 60, "redis": 60}
START_MS = 1_700_000_000_000
# leases that end at once, within a few steps of time, or later; delays likewise (0: due now)
LEASES = st.one_of(st.just(1), st.integers(1_000, STEP_MS), st.just(LONG_MS))
DELAYS = st.one_of(st.just(0), st.integers(1_000, STEP_MS), st.just(HOUR_MS))


@dataclass
class Model:
    """What the model expects of one job."""

    state: str  # waiting (due or scheduled, by due_at) | running | dead | done | cancelled
    due_at: int = 0  # waiting: when it is due (ms, by the brokers' clock)
    attempts: int = 0
    crashes: int = 0
    token: int | None = None
    lease_end: int = 0  # running: the last ms of its lease
    result: bytes | None = None
    stale: list[int] = field(default_factory=list)  # tokens it held before


class BrokerModel(RuleBasedStateMachine):
    """Random walks over the broker verbs and time, checked against :class:`Model` each step."""

    backend = "memory"
    tmp_path = Path(".")

    def __init__(self) -> None:
        super().__init__()
        self.namespace = f"model-{uuid.uuid4().hex[:10]}"
        self.clock = Clock(START_MS)
        self.broker = open_for(self.backend, self.namespace, self.clock, self.tmp_path)
        self.jobs: dict[str, Model] = {}
        self.next_id = 0

    def teardown(self) -> None:
        self.broker.close()
        if self.backend == "redis":
            client = redis_or_skip()
            delete_namespace(client, self.namespace)
            client.close()

    @property
    def now(self) -> int:
        return self.clock.ms

    def advance(self, ms: int) -> None:
        """Time passes: ``ms``, or a little more so as not to stop within 1 ms of a lease end or
        a due time (the brokers round a delay's start differently, by up to 1 ms)."""
        marks = self.marks()
        at = self.now + ms
        while any(abs(at - mark) <= 1 for mark in marks):
            at += 1
        # results are kept an hour, and Redis expires them by its real clock: stay within it
        assert at - START_MS < HOUR_MS, "a walk's steps of time add up to an hour"
        self.clock.set(at)

    def marks(self, within: int = HOUR_MS) -> list[int]:
        """The lease ends and due times to come (up to ``within`` ms from now)."""
        running = [m.lease_end for m in self.jobs.values() if m.state == "running"]
        waiting = [m.due_at for m in self.jobs.values() if m.state == "waiting"]
        return [t for t in running + waiting if self.now <= t <= self.now + within]

    def state(self, m: Model) -> str:
        if m.state == "waiting":
            return "due" if m.due_at <= self.now else "scheduled"
        return m.state

    def ids(self, *states: str) -> list[str]:
        return [i for i, m in self.jobs.items() if self.state(m) in states]

    def ended(self, m: Model) -> bool:
        """A running job whose lease has ended (recovered by the next claim or recover)."""
        return m.state == "running" and m.lease_end < self.now

    def front_due(self) -> int:
        """The due time of a job put back at the head of the line (a recovered lease, a job
        handed back): ahead of every job due already, as it was before its claim. Memory and
        SQLite put it 1 ms before the first; Redis at the same time, its due list's head first."""
        gap = 0 if self.backend == "redis" else 1
        due = [m.due_at - gap for m in self.jobs.values() if self.state(m) == "due"]
        return min([self.now, *due])

    def recover_model(self) -> int:
        ended = [m for m in self.jobs.values() if self.ended(m)]
        front = self.front_due()
        for m in ended:
            self._leave_running(m, "waiting")
            m.due_at = front
            m.crashes += 1
        return len(ended)

    def _leave_running(self, m: Model, state: str) -> None:
        assert m.token is not None
        m.stale.append(m.token)
        m.state, m.token = state, None

    def lease(self, job_id: str) -> Lease:
        token = self.jobs[job_id].token
        assert token is not None
        return Lease(Q, job_id, token)

    # -- time --------------------------------------------------------------------------------

    @rule(ms=st.one_of(st.integers(1, 50), st.integers(51, STEP_MS)))
    def time_passes(self, ms: int) -> None:
        self.advance(ms)

    @precondition(lambda self: self.marks(LONG_MS))
    @rule(data=st.data(), after=st.booleans())
    def time_comes_to_a_mark(self, data: st.DataObject, after: bool) -> None:
        """Time runs to just before or just after a lease end or a due time."""
        mark = data.draw(st.sampled_from(sorted(self.marks(LONG_MS))))
        self.advance(max(mark + (2 if after else -2) - self.now, 1))

    # -- verbs -------------------------------------------------------------------------------

    @rule(delay=DELAYS)
    def enqueue_new(self, delay: int) -> None:
        job_id = f"j{self.next_id}"
        self.next_id += 1
        item = EnqueueItem(Q, job_id, job_id.encode(), delay)
        assert self.broker.enqueue([item]) == [True]
        self.jobs[job_id] = Model("waiting", due_at=self.now + delay)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data())
    def enqueue_again(self, data: st.DataObject) -> None:
        job_id = data.draw(st.sampled_from(sorted(self.jobs)))
        m = self.jobs[job_id]
        written = m.state in ("dead", "done", "cancelled")
        item = EnqueueItem(Q, job_id, job_id.encode())
        assert self.broker.enqueue([item]) == [written], (job_id, m)
        if written:
            stale = m.stale + ([m.token] if m.token else [])
            self.jobs[job_id] = Model("waiting", due_at=self.now, stale=stale)

    @rule(limit=st.integers(1, 3), lease_ms=LEASES, ahead=st.booleans(), early=st.booleans())
    def claim(self, limit: int, lease_ms: int, ahead: bool, early: bool) -> None:
        """Claim (``early``: 2 ms before the next scheduled job is due)."""
        scheduled = [self.jobs[i].due_at for i in self.ids("scheduled")]
        if early and scheduled and self.now + 2 < min(scheduled) <= self.now + LONG_MS:
            self.advance(min(scheduled) - 2 - self.now)
        self.recover_model()
        due = self.ids("due")
        soon = self.ids("scheduled") if ahead else []
        ahead_ms = 2 * HOUR_MS if ahead else 0  # claimed ahead: after the due ones
        batch = self.broker.claim([Q], limit, lease_ms, "w", ahead_ms)
        got = [c.job_id for c in batch.jobs]
        assert len(set(got)) == len(got) == min(limit, len(due) + len(soon))
        taken_due = min(limit, len(due))
        for taken, among in ((got[:taken_due], due), (got[taken_due:], soon)):
            assert set(taken) <= set(among), (got, due, soon)
            left = [self.jobs[i].due_at for i in among if i not in taken]
            if taken and left:  # the earliest due first (within the 1 ms the brokers round)
                assert max(self.jobs[i].due_at for i in taken) <= min(left) + 1, (got, among)
        for c in batch.jobs:
            m = self.jobs[c.job_id]
            assert abs(c.wait_ms - max(m.due_at - self.now, 0)) <= 1, (c, m, self.now)
            assert (c.attempt, c.crashes) == (m.attempts + 1, m.crashes), (c, m)
            assert c.body == c.job_id.encode()
            assert c.lease.token not in m.stale, "a token was handed out twice"
            m.state, m.token, m.lease_end = "running", c.lease.token, self.now + lease_ms
            m.attempts += 1
        waiting = [m.due_at for m in self.jobs.values() if m.state == "waiting"]
        if not waiting:
            assert batch.next_due_ms is None
        else:
            next_due = max(min(waiting) - self.now, 0)
            assert batch.next_due_ms is not None and abs(batch.next_due_ms - next_due) <= 1
        if lease_ms == 1:
            self.advance(3)  # and the lease has ended before anyone could renew it

    @precondition(lambda self: self.ids("running"))
    @rule(data=st.data(), lease_ms=LEASES, just_before_end=st.booleans(), then=st.booleans())
    def renew(self, data: st.DataObject, lease_ms: int, just_before_end: bool, then: bool) -> None:
        """Renew a lease (at once, or 2 ms before it ends); ``then`` time passes its old end."""
        job_id = data.draw(st.sampled_from(self.ids("running")))
        m = self.jobs[job_id]
        if just_before_end and m.lease_end - 2 > self.now:
            self.advance(m.lease_end - 2 - self.now)
        old_end, live = m.lease_end, not self.ended(m)
        assert self.broker.extend([self.lease(job_id)], lease_ms) == [RENEWED if live else REFUSED]
        if not live:
            return
        m.lease_end = self.now + lease_ms  # the invariant reads it back from the broker
        if then and m.lease_end > old_end + 3:
            self.advance(old_end + 2 - self.now)  # the old lease would have ended by now
            assert self.broker.recover([Q]) == self.recover_model()
            if not self.ended(m):  # (unless time had to step past its new end too)
                record = self.broker.get(Q, job_id)
                assert record is not None and record.state == "running", "recovered at old end"

    @precondition(lambda self: self.ids("running"))
    @rule(data=st.data(), keep=st.booleans())
    def ack(self, data: st.DataObject, keep: bool) -> None:
        job_id = data.draw(st.sampled_from(self.ids("running")))
        result = f"r-{job_id}".encode() if keep else None
        ack = Ack(self.lease(job_id), result, HOUR_MS if keep else 0)
        assert self.broker.ack([ack]) == [True]  # an ended lease not yet recovered still counts
        m = self.jobs[job_id]
        self._leave_running(m, "done")
        m.result = result

    @precondition(lambda self: self.ids("running"))
    @rule(data=st.data(), count=st.booleans(), delay=DELAYS)
    def retry(self, data: st.DataObject, count: bool, delay: int) -> None:
        job_id = data.draw(st.sampled_from(self.ids("running")))
        item = RetryLater(self.lease(job_id), delay, FAILURE, count_attempt=count)
        assert self.broker.retry([item]) == [True]
        m = self.jobs[job_id]
        handed_back = not count and not delay  # a stopping worker's: back at the head
        due_at = self.front_due() if handed_back else self.now + delay
        self._leave_running(m, "waiting")
        m.due_at = due_at
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
        m.state, m.due_at, m.attempts, m.crashes = "waiting", self.now, 0, 0

    # -- what must always hold ---------------------------------------------------------------

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
            assert (record.state, record.attempt) == (self.state(m), m.attempts), (job_id, m)
            if m.state == "running":  # a renewal moved it; an expired lease is not renewed
                assert record.lease_until_ms == m.lease_end, (job_id, record, m)
            if m.state == "waiting" and record.due_at_ms is not None:
                assert 0 <= record.due_at_ms - m.due_at <= 1, (job_id, record, m)
        c = self.broker.counts(Q)
        expected = [len(self.ids(s)) for s in ("due", "scheduled", "running", "dead")]
        assert [c.due, c.scheduled, c.running, c.dead] == expected, (c, self.now)
        for state in ("due", "scheduled"):
            listed = sorted(j.job_id for j in self.broker.jobs(Q, state))
            assert listed == sorted(self.ids(state)), state


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
    return RedisOnClock(REDIS_URL, namespace, retention, clock)


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
