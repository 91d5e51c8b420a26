"""The worker's write thread: outcomes decided during a write go in the next batch; a write the
broker cannot take is retried with what came meanwhile, and given up on only at a stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from taskq import App
from taskq.brokers.base import Ack, Lease
from taskq.worker import writer
from taskq.worker.leases import LeaseKeeper
from taskq.worker.outcome import Attempt
from taskq.worker.writer import Writer
from tests.conftest import RedisServer

from .test_prefetch import wait_for


def claimed_leases(app: App, count: int) -> list[Lease]:
    """Enqueue ``count`` jobs and claim them, as a worker would."""

    @app.task
    def noop() -> None:
        pass

    noop.delay_many([((), {})] * count)
    batch = app.broker.claim(["default"], count, 30_000, "test-worker")
    assert len(batch.jobs) == count
    return [job.lease for job in batch.jobs]


def keeper(app: App, leases: list[Lease]) -> LeaseKeeper[Attempt]:
    """A lease keeper holding ``leases`` (never renewing: the test is over long before)."""

    async def no_io(call: Any) -> Any:
        raise AssertionError("not renewed in this test")

    kept: LeaseKeeper[Attempt] = LeaseKeeper(app.broker, 30.0, no_io, print, print)
    kept.hold([(lease, None) for lease in leases], time.monotonic())  # type: ignore[misc]
    return kept


def spy_acks(app: App, gate: threading.Event | None = None) -> list[int]:
    """Record the size of each ack call to the real broker (held until ``gate`` is set)."""
    sizes: list[int] = []
    ack = app.broker.ack

    def recording(items: Any) -> Any:
        sizes.append(len(items))
        if gate is not None:
            assert gate.wait(10)
        return ack(items)

    app.broker.ack = recording  # type: ignore[method-assign]
    return sizes


def states(app: App, leases: list[Lease]) -> list[str]:
    return [app.job(lease.job_id).status() for lease in leases]


@pytest.fixture
def memory_app(namespace: str) -> Iterator[App]:
    app = App("memory://", namespace=namespace, env={})
    yield app
    app.close()


def test_outcomes_decided_during_a_write_go_together_in_the_next_one(memory_app: App) -> None:
    app = memory_app
    leases = claimed_leases(app, 6)
    kept = keeper(app, leases)
    gate = threading.Event()
    sizes = spy_acks(app, gate)
    writes: list[int] = []
    out = Writer(app.broker, kept, lambda: writes.append(1))
    try:
        out.write([Ack(leases[0], None, 0)])
        wait_for(lambda: sizes == [1], "the first write did not start")
        for lease in leases[1:]:  # decided while the first write is on its way
            out.write([Ack(lease, None, 0)])
        assert out.unwritten == 6
        assert len(kept.held) == 6  # a lease is kept until its outcome is written
        gate.set()
        wait_for(lambda: out.unwritten == 0, "not all written")
        assert sizes == [1, 5]
        assert writes == [1, 1]
        assert kept.held == {}
        assert states(app, leases) == ["succeeded"] * 6
    finally:
        gate.set()
        out.finish()


@pytest.fixture
def restartable_redis() -> Iterator[RedisServer]:
    with RedisServer(appendonly=True, extra=["--appendfsync", "always"]) as server:
        yield server


@pytest.mark.redis
@pytest.mark.faults
@pytest.mark.slow
def test_a_write_redis_cannot_take_is_retried_with_what_came_meanwhile(
    restartable_redis: RedisServer, namespace: str
) -> None:
    app = App(restartable_redis.url, namespace=namespace, env={})
    leases = claimed_leases(app, 4)
    kept = keeper(app, leases)
    sizes = spy_acks(app)
    out = Writer(app.broker, kept, lambda: None)
    try:
        restartable_redis.stop()
        out.write([Ack(leases[0], None, 0)])
        wait_for(lambda: len(sizes) >= 2, "a failed write was not tried again", timeout=15)
        out.write([Ack(lease, None, 0) for lease in leases[1:3]])
        wait_for(lambda: sizes[-1] == 3, "the retry did not carry what came meanwhile", 15)
        assert out.unwritten == 3 and len(kept.held) == 4
        restartable_redis.start()
        wait_for(lambda: out.unwritten == 0, "not written once Redis came back", timeout=15)
        print(f"ack calls: {sizes}")
        assert states(app, leases) == ["succeeded"] * 3 + ["running"]
        assert list(kept.held) == [leases[3].job_id]
    finally:
        out.finish()
        app.close()


@pytest.mark.redis
@pytest.mark.faults
@pytest.mark.slow
def test_a_stop_gives_up_on_writes_after_the_final_flush_and_says_so(
    restartable_redis: RedisServer,
    namespace: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(writer, "FINAL_FLUSH", 1.0)
    app = App(restartable_redis.url, namespace=namespace, env={})
    leases = claimed_leases(app, 2)
    out = Writer(app.broker, keeper(app, leases), lambda: None)
    restartable_redis.stop()
    out.write([Ack(lease, None, 0) for lease in leases])
    started = time.monotonic()
    out.finish()
    took = time.monotonic() - started
    assert took < 10, f"finish took {took:.1f}s"
    assert out.unwritten == 2
    assert "could not record 2 outcome(s) before exiting" in caplog.text
    restartable_redis.start()
    assert states(app, leases) == ["running", "running"]  # their leases bring them back
    app.close()
