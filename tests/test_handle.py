"""Job handles on every broker: status transitions, info, result (without busy polling),
aresult, and cancel in each state, with a real worker."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from taskq import App, Cancelled, JobNotFound, TaskFailed, current_job
from taskq.brokers.base import Bury, EnqueueItem, Failure, RetryLater
from taskq.cli.jobs import row
from taskq.job import Job
from taskq.serialization import packb
from taskq.worker import Worker, WorkerOptions

FAST: dict[str, Any] = {"poll_interval": 0.05, "lease": 0.6, "grace": 2.0, "heartbeat": 1.0}


@pytest.fixture(params=["memory", "sqlite", "redis"])
def app(request: pytest.FixtureRequest, make_app: Callable[[str], App]) -> App:
    app = make_app(request.param)
    gate = threading.Event()

    @app.task(max_retries=1, backoff=lambda attempt: 0.2)
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(max_retries=0)
    def nothing() -> None:
        return None

    @app.task(max_retries=0, store_none=True)
    def nothing_kept() -> None:
        return None

    @app.task(max_retries=1, backoff=lambda attempt: 0.3)
    def fail(message: str) -> int:
        raise ValueError(message)

    @app.task(result_ttl=0.3)
    def fleeting() -> str:
        return "gone soon"

    @app.task
    def wait_for_gate() -> str:
        gate.wait(10)
        return "opened"

    app.task(until_cancelled)

    @app.task(max_crashes=1)
    def fragile() -> str:
        return "survived"

    @app.task
    async def sleeper() -> str:
        await asyncio.sleep(10)
        return "woke"

    @app.task(queue="mail")
    def send(to: str) -> str:
        return f"sent to {to}"

    app.gate = gate  # type: ignore[attr-defined]
    return app


def until_cancelled() -> str:
    """A plain task that stops (as cancelled) once its cancel is heard."""
    job = current_job()
    deadline = time.monotonic() + 10
    while not job.cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    raise Cancelled(f"{job.task} {job.id} attempt {job.attempt} saw its cancel")


@contextmanager
def worker(app: App, **options: Any) -> Iterator[Worker]:
    """A worker running in a thread of its own for the duration of the block."""
    running = Worker(app, WorkerOptions(**{**FAST, **options}))
    thread = threading.Thread(target=lambda: asyncio.run(running.run()), daemon=True)
    thread.start()
    try:
        yield running
    finally:
        app.gate.set()  # type: ignore[attr-defined]
        running.stop()
        thread.join(15)
        assert not thread.is_alive()


def wait_status(handle: Any, status: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while handle.status() != status:
        assert time.monotonic() < deadline, f"{handle} is {handle.status()}, not {status}"
        time.sleep(0.01)


def test_status_goes_scheduled_due_running_succeeded(app: App) -> None:
    handle = app.tasks["wait_for_gate"].delay_by(0.3)
    assert handle.status() == "scheduled"
    wait_status(handle, "due")
    with worker(app):
        wait_status(handle, "running")
        info = handle.info()
        assert (info.status, info.task, info.attempts, info.worker is not None) == (
            "running",
            "wait_for_gate",
            1,
            True,
        )
        assert info.lease_until is not None and info.due_at is None
        app.gate.set()  # type: ignore[attr-defined]
        assert handle.result(timeout=10) == "opened"
    assert handle.status() == "succeeded"
    info = handle.info()
    assert (info.attempts, info.task, info.finished_at is not None) == (1, None, True)


def test_status_goes_failed_then_dead_and_result_raises_the_remote_error(app: App) -> None:
    handle = app.tasks["fail"].delay("boom")
    with worker(app):
        wait_status(handle, "failed")  # the first attempt failed, a retry is pending
        info = handle.info()
        assert info.last_error is not None and info.last_error.error_type == "ValueError"
        assert info.args == ("boom",) and info.due_at is not None
        with pytest.raises(TaskFailed) as failed:
            handle.result(timeout=10)
    assert (failed.value.error_type, failed.value.message) == ("ValueError", "boom")
    assert "raise ValueError(message)" in failed.value.traceback
    assert handle.status() == "dead"
    assert handle.info().last_error.reason == "exhausted"  # type: ignore[union-attr]


def test_result_of_a_none_returning_job_is_none(app: App) -> None:
    handle = app.tasks["nothing"].delay()
    with worker(app):
        assert handle.result(timeout=10) is None
    assert handle.status() == "succeeded"


def test_none_results_store_nothing_unless_asked(app: App) -> None:
    plain, kept = app.tasks["nothing"].delay(), app.tasks["nothing_kept"].delay()
    with worker(app):
        assert plain.result(timeout=10) is None and kept.result(timeout=10) is None
    record = app.inspector.get("default", plain.id)
    assert record is not None and (record.result, record.result_kept) == (None, False)
    record = app.inspector.get("default", kept.id)
    assert record is not None and (record.result, record.result_kept) == (packb(None), True)


def test_result_times_out_and_an_expired_result_is_not_found(app: App) -> None:
    scheduled = app.tasks["add"].delay_by(60, 1, 2)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        scheduled.result(timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2
    handle = app.tasks["fleeting"].delay()
    with worker(app):
        assert handle.result(timeout=10) == "gone soon"
    time.sleep(0.5)
    assert handle.status() == "succeeded"  # the finished record outlives the result
    with pytest.raises(JobNotFound, match="expired"):
        handle.result(timeout=1)
    with pytest.raises(JobNotFound):
        app.job("never-enqueued").result(timeout=1)


def test_result_wakes_on_the_end_notice_not_a_poll(app: App) -> None:
    handle = app.tasks["add"].delay_by(0.3, 2, 3)
    with worker(app):
        started = time.monotonic()
        assert handle.result(timeout=10, poll=30) == 5  # a poll would take 30 s
        assert time.monotonic() - started < 3


def test_aresult_does_not_block_the_event_loop(app: App) -> None:
    handle = app.tasks["add"].delay_by(0.3, 20, 22)

    async def main() -> tuple[int, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        value = await handle.aresult(timeout=10)
        ticker.cancel()
        return value, ticks

    with worker(app):
        value, ticks = asyncio.run(main())
    assert value == 42 and ticks >= 10


def test_cancel_of_waiting_jobs_is_atomic_and_reported(app: App) -> None:
    scheduled = app.tasks["add"].delay_by(60, 1, 1)
    due = app.tasks["add"].delay(1, 2)
    assert scheduled.cancel() is True and due.cancel() is True
    assert (scheduled.status(), due.status()) == ("cancelled", "cancelled")
    assert scheduled.cancel() is False
    with pytest.raises(Cancelled):
        due.result(timeout=1)
    assert app.inspector.counts("default").due == 0
    assert app.job("never-enqueued").cancel() is False


def test_cancel_of_a_running_async_job_cancels_it(app: App) -> None:
    handle = app.tasks["sleeper"].delay()
    with worker(app):
        wait_status(handle, "running")
        started = time.monotonic()
        assert handle.cancel() is True
        assert handle.info().cancel_requested is True
        with pytest.raises(Cancelled):
            handle.result(timeout=5)
        assert time.monotonic() - started < 0.6 + 1.0  # heard at a renewal, every lease/3
    assert handle.status() == "cancelled"


def test_a_running_sync_job_sees_current_job_cancelled(app: App) -> None:
    handle = app.tasks["until_cancelled"].delay()
    with worker(app):
        wait_status(handle, "running")
        assert handle.cancel() is True
        with pytest.raises(Cancelled):
            handle.result(timeout=5)
    assert handle.status() == "cancelled"


def test_cancel_of_an_ended_job_is_refused(app: App) -> None:
    done, dead = app.tasks["add"].delay(1, 2), app.tasks["fail"].delay("x")
    with worker(app):
        assert done.result(timeout=10) == 3
        with pytest.raises(TaskFailed):
            dead.result(timeout=10)
    assert done.cancel() is False and dead.cancel() is False
    assert (done.status(), dead.status()) == ("succeeded", "dead")


def test_current_job_outside_a_task_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="inside a task"):
        current_job()


def test_dead_letter_reasons_and_retry_back_to_due(app: App) -> None:
    fragile = app.tasks["fragile"].delay()
    # a worker that claims it and dies: the lease runs out, the next claim counts a crash
    assert [c.job_id for c in app.broker.claim(["default"], 1, 50, "doomed").jobs] == [fragile.id]
    time.sleep(0.1)
    unknown = Job("unknown-1", "no_such_task", (), {}, "default", 0, 0).encode()
    app.submit([EnqueueItem("default", "unknown-1", unknown)])
    app.submit([EnqueueItem("default", "garbage-1", b"\xc1 not msgpack")])
    with worker(app):
        wait_status(fragile, "dead")
        wait_status(app.job("garbage-1"), "dead")
        wait_status(app.job("unknown-1"), "dead")
    reasons = {r.job_id: r.failure.reason for r in app.inspector.dead("default") if r.failure}
    assert reasons == {
        "unknown-1": "unknown-task",
        "garbage-1": "undecodable",
        fragile.id: "crashed",
    }
    assert app.inspector.requeue_dead("default", [fragile.id]) == 1
    assert fragile.status() == "due"  # no attempt of it failed since it was put back
    info = fragile.info()
    assert (info.status, info.attempts) == ("due", 0)
    assert info.last_error is not None and info.last_error.reason == "crashed"  # kept
    with worker(app):
        assert fragile.result(timeout=10) == "survived"


BOOM = Failure("ValueError", "boom", "Traceback ...")


def _fail_once(app: App, handle: Any, delay_ms: int) -> None:
    """Claim the job and fail its attempt, as a worker would, its retry due in ``delay_ms``."""
    [claimed] = app.broker.claim([handle.queue], 1, 60_000, "w").jobs
    assert app.broker.retry([RetryLater(claimed.lease, delay_ms, BOOM)]) == [True]


def _hand_back(app: App, handle: Any) -> None:
    """Claim the job and give it back unstarted, its attempt not counted (a graceful stop)."""
    [claimed] = app.broker.claim([handle.queue], 1, 60_000, "w").jobs
    assert app.broker.retry([RetryLater(claimed.lease, 0, count_attempt=False)]) == [True]


def test_failed_means_an_attempt_failed_since_enqueued_or_put_back(app: App) -> None:
    handle = app.tasks["add"].delay(1, 2)
    _fail_once(app, handle, 0)
    assert (handle.status(), handle.info().attempts) == ("failed", 1)
    _hand_back(app, handle)  # the hand-back spends no attempt: the failed one still counts
    assert (handle.status(), handle.info().attempts) == ("failed", 1)
    [claimed] = app.broker.claim(["default"], 1, 60_000, "w").jobs
    assert app.broker.bury([Bury(claimed.lease, BOOM)]) == [True]
    assert app.inspector.requeue_dead("default", [handle.id]) == 1
    assert (handle.status(), handle.info().last_error) == ("due", BOOM)
    _hand_back(app, handle)
    assert (handle.status(), handle.info().attempts) == ("due", 0)
    _fail_once(app, handle, 60_000)
    assert handle.status() == "failed"
    assert [r["status"] for r in map(row, app.inspector.jobs("default", "scheduled"))] == ["failed"]


def test_cancel_of_a_job_whose_retry_is_pending(app: App) -> None:
    handle = app.tasks["add"].delay(1, 2)
    _fail_once(app, handle, 60_000)
    assert handle.status() == "failed"
    assert handle.cancel() is True
    assert handle.status() == "cancelled" and handle.cancel() is False
    with pytest.raises(Cancelled):
        handle.result(timeout=1)
    assert app.inspector.counts("default").scheduled == 0


def test_a_job_never_enqueued_is_unknown(app: App) -> None:
    handle = app.job("never-enqueued")
    assert (handle.queue, handle.status()) == (None, "unknown")
    info = handle.info()
    assert (info.status, info.queue, info.task, info.attempts) == ("unknown", None, None, 0)
    assert app.job("never-enqueued", queue="mail").status() == "unknown"
    with pytest.raises(JobNotFound, match="in any of the queues 'default', 'mail'"):
        handle.result(timeout=1)
    with pytest.raises(JobNotFound, match="in queue 'mail'"):
        app.job("never-enqueued", queue="mail").result(timeout=1)


def test_a_job_is_found_by_id_alone_in_any_queue_of_the_app(app: App) -> None:
    handle = app.tasks["send"].delay("ada")
    found = app.job(handle.id)
    assert found == handle and found.queue == "mail"
    assert (found.status(), found.info().queue, found.info().task) == ("due", "mail", "send")
    assert app.job(handle.id, queue="default").status() == "unknown"
    early = app.job("send-bob")  # not enqueued yet: looked for again at each call
    assert early.status() == "unknown"
    app.tasks["send"].with_options(job_id="send-bob").delay("bob")
    assert (early.status(), early.info().queue) == ("due", "mail")
    with worker(app, queues=("mail",)):
        assert found.result(timeout=10) == "sent to ada"
        assert early.result(timeout=10) == "sent to bob"
    assert app.known_queues() == ["default", "mail"]
