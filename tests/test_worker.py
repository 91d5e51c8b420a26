"""In-process worker tests against the real Redis: delays, results, retries, dead letters,
timeouts, bad payloads, stale leases, wake-ups and concurrency."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from taskq import App, ConfigError, Retry, Task, TaskFailed
from taskq.brokers.base import Ack, EnqueueItem, JobRecord
from taskq.brokers.redis_keys import NamespaceKeys
from taskq.job import Job
from taskq.worker import Worker, WorkerOptions, claimer
from taskq.worker.signals import run_in_foreground

pytestmark = pytest.mark.redis

FAST: dict[str, Any] = {"poll_interval": 0.05, "lease": 5.0, "grace": 2.0, "heartbeat": 1.0}


def fast_backoff(attempt: int) -> float:
    return 0.05


def run_burst(app: App, timeout: float = 20.0, **options: Any) -> None:
    """Run a worker in burst mode here until nothing is waiting or running."""
    worker = Worker(app, WorkerOptions(**{**FAST, "burst": True, **options}))
    asyncio.run(asyncio.wait_for(worker.run(), timeout))


@contextmanager
def worker_thread(app: App, **options: Any) -> Iterator[Worker]:
    """A worker running in a thread of its own for the duration of the block."""
    worker = Worker(app, WorkerOptions(**{**FAST, **options}))
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(worker.run())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="test-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(15)
        assert not thread.is_alive(), "the worker did not stop within 15 s"
    assert not errors, errors


def wait_until_idle(client: redis.Redis, namespace: str, queue: str = "default") -> None:
    """Wait until the worker listens to the queue's wake channel, then a little more, so that
    it has made its first claim and gone to sleep."""
    channel = NamespaceKeys(namespace).queue(queue).wake
    deadline = time.monotonic() + 5
    while client.pubsub_numsub(channel)[0][1] < 1:
        assert time.monotonic() < deadline, "the worker never subscribed to its wake channel"
        time.sleep(0.01)
    time.sleep(0.3)


def dead_record(app: App, job_id: str, queue: str = "default") -> JobRecord:
    records = {r.job_id: r for r in app.inspector.dead(queue)}
    assert job_id in records, f"job {job_id} is not dead; dead ones: {sorted(records)}"
    return records[job_id]


def assert_queue_empty(app: App, queue: str = "default", dead: int = 0) -> None:
    counts = app.inspector.counts(queue)
    assert (counts.due, counts.scheduled, counts.running, counts.dead) == (0, 0, 0, dead)


# -- running jobs ----------------------------------------------------------------------------


def test_a_delayed_job_runs_after_its_delay_not_before(redis_app: App) -> None:
    started: list[float] = []

    @redis_app.task
    def double(x: int) -> int:
        started.append(time.time())
        return x * 2

    handle = double.delay_by(0.5, 21)
    record = redis_app.inspector.get("default", handle.id)
    assert record is not None and record.due_at_ms is not None
    assert handle.status() == "scheduled"
    with worker_thread(redis_app):
        assert handle.result(timeout=5) == 42
    assert len(started) == 1
    # Redis TIME and time.time() read the same clock here; 5 ms of slack for rounding to ms
    assert started[0] * 1000 >= record.due_at_ms - 5
    assert handle.status() == "succeeded"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sync_and_async_tasks_return_results(redis_app: App, kind: str) -> None:
    if kind == "sync":

        @redis_app.task
        def join(a: str, b: str, sep: str = "-") -> dict[str, Any]:
            return {"joined": a + sep + b, "thread": threading.current_thread().name}

        task: Any = join
    else:

        @redis_app.task
        async def ajoin(a: str, b: str, sep: str = "-") -> dict[str, Any]:
            await asyncio.sleep(0.01)
            return {"joined": a + sep + b, "thread": threading.current_thread().name}

        task = ajoin

    handles = [task.delay("x", str(i), sep="+") for i in range(5)]
    run_burst(redis_app)
    results = [h.result(timeout=1) for h in handles]
    assert [r["joined"] for r in results] == [f"x+{i}" for i in range(5)]
    # sync tasks run in the worker's task threads, async ones on its event loop
    on_pool = {r["thread"].startswith("taskq-task") for r in results}
    assert on_pool == {kind == "sync"}
    assert_queue_empty(redis_app)


def test_a_result_of_none_is_returned_as_none(redis_app: App) -> None:
    @redis_app.task
    def nothing() -> None:
        return None

    handle = nothing.delay()
    run_burst(redis_app)
    assert handle.result(timeout=1) is None


def test_a_stop_asked_before_the_worker_runs_is_not_lost(redis_app: App) -> None:
    worker = Worker(redis_app, WorkerOptions(**{**FAST, "poll_interval": 30.0}))
    worker.stop()  # e.g. a signal that arrives while the worker is starting
    started = time.monotonic()
    asyncio.run(asyncio.wait_for(worker.run(), 10))
    assert time.monotonic() - started < 5


# -- failures, retries and the dead-letter store -----------------------------------------------


def test_failures_are_retried_with_backoff_then_dead_with_the_traceback(redis_app: App) -> None:
    calls: list[float] = []

    @redis_app.task(max_retries=2, backoff=lambda attempt: 0.2)
    def flaky(x: int) -> int:
        calls.append(time.monotonic())
        raise ValueError(f"boom {len(calls)}")

    handle = flaky.delay(1)
    run_burst(redis_app)
    assert len(calls) == 3  # one attempt and two retries
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.19, gaps  # the backoff was waited out
    with pytest.raises(TaskFailed) as failed:
        handle.result(timeout=1)
    assert failed.value.error_type == "ValueError"
    assert failed.value.message == "boom 3"
    assert "Traceback (most recent call last)" in failed.value.traceback
    assert 'raise ValueError(f"boom {len(calls)}")' in failed.value.traceback
    record = dead_record(redis_app, handle.id)
    assert record.failure is not None and record.failure.reason == "exhausted"
    assert record.attempt == 3
    assert handle.status() == "dead"
    assert_queue_empty(redis_app, dead=1)


def test_a_task_raising_retry_runs_again_after_the_delay_it_asked_for(redis_app: App) -> None:
    calls: list[float] = []

    @redis_app.task(max_retries=1, backoff=lambda attempt: 60.0)
    def later() -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise Retry(delay=0.3)
        return "done"

    handle = later.delay()
    run_burst(redis_app)
    assert handle.result(timeout=1) == "done"
    assert len(calls) == 2
    # the Retry's own delay is used, not the task's 60 s backoff
    assert 0.29 <= calls[1] - calls[0] < 10


class Transient(Exception):
    pass


class Permanent(Transient):
    pass


@pytest.mark.parametrize(
    ("retry_on", "no_retry_on", "raised", "calls", "reason"),
    [
        ((Exception,), (Permanent,), Permanent, 1, "not-retried"),
        ((Exception,), (Permanent,), Transient, 3, "exhausted"),
        ((Transient,), (), KeyError, 1, "not-retried"),
        ((Transient,), (), Permanent, 3, "exhausted"),
    ],
)
def test_retry_on_and_no_retry_on_filter_exceptions(
    redis_app: App,
    retry_on: tuple[type[BaseException], ...],
    no_retry_on: tuple[type[BaseException], ...],
    raised: type[Exception],
    calls: int,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[int] = []

    @redis_app.task(max_retries=2, backoff=fast_backoff, retry_on=retry_on, no_retry_on=no_retry_on)
    def failing() -> None:
        seen.append(1)
        raise raised("no")

    handle = failing.delay()
    caplog.set_level(logging.WARNING, logger="taskq")
    run_burst(redis_app)
    assert len(seen) == calls
    record = dead_record(redis_app, handle.id)
    assert record.failure is not None
    assert (record.failure.error_type, record.failure.reason) == (raised.__qualname__, reason)
    # the last failure's line says what happens next: no retry, whatever retries were left
    last = [r.getMessage() for r in caplog.records if r.message.startswith("failed")][-1]
    assert last.endswith("(not retried)" if reason == "not-retried" else "(retries left=0)")


def test_an_async_task_over_its_timeout_is_cancelled_and_fails(redis_app: App) -> None:
    cancelled = threading.Event()

    @redis_app.task(timeout=0.2, max_retries=0)
    async def slow() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    handle = slow.delay()
    run_burst(redis_app)
    assert cancelled.is_set()
    with pytest.raises(TaskFailed) as failed:
        handle.result(timeout=1)
    assert failed.value.error_type == "TimeoutError"
    assert "timeout of 0.2s" in failed.value.message
    assert dead_record(redis_app, handle.id).failure.reason == "exhausted"  # type: ignore[union-attr]


def test_a_sync_task_over_its_timeout_is_reported_failed_while_it_runs_on(redis_app: App) -> None:
    release = threading.Event()
    finished = threading.Event()

    @redis_app.task(timeout=0.2, max_retries=0)
    def stuck() -> None:
        release.wait(30)
        finished.set()

    handle = stuck.delay()
    try:
        with worker_thread(redis_app):
            with pytest.raises(TaskFailed) as failed:
                handle.result(timeout=10)
            # recorded as failed although the thread (which cannot be stopped) has not ended
            assert not finished.is_set()
            assert failed.value.error_type == "TimeoutError"
            assert "timeout of 0.2s" in failed.value.message
    finally:
        release.set()


def test_a_cancelled_run_stops_claiming(redis_app: App) -> None:
    @redis_app.task
    def nap() -> None:
        time.sleep(0.05)

    worker = Worker(redis_app, WorkerOptions(**FAST))

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(worker.run(), 0.3)

    asyncio.run(main())  # returns once the worker's claim thread has ended
    handle = nap.delay()
    time.sleep(0.3)
    assert handle.status() == "due"  # nobody claims it any more


def test_a_sync_task_raising_system_exit_stops_its_worker_and_its_job_is_not_lost(
    redis_app: App,
) -> None:
    @redis_app.task(max_retries=0)
    def leave() -> None:
        raise SystemExit(3)

    handle = leave.delay()
    worker = Worker(redis_app, WorkerOptions(**{**FAST, "lease": 1.0}))
    asyncio.run(asyncio.wait_for(worker.run(), 10))  # stops by itself, gracefully
    # nothing recorded: the job stays claimed until its lease ends, and then runs again
    assert handle.status() == "running"
    counts = redis_app.inspector.counts("default")
    assert (counts.due, counts.running, counts.dead) == (0, 1, 0)


def test_a_worker_whose_claim_thread_fails_exits_with_code_1(
    make_app: Callable[[str], App], monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. a SQLite file found unusable (a newer schema) once a lock held since start lifts: the
    # worker stops, and says so by its exit code, so that a supervisor restarts or alerts
    app = make_app("memory")

    def unusable(*args: Any, **kwargs: Any) -> None:
        raise ConfigError("the file has taskq schema version 99, newer than this taskq's")

    monkeypatch.setattr(app.broker, "claim", unusable)
    assert run_in_foreground(Worker(app, WorkerOptions(**FAST))) == 1


def test_a_worker_keeps_no_timeout_deadlines_of_finished_jobs(redis_app: App) -> None:
    @redis_app.task(timeout=3600)
    def quick(x: int) -> int:
        return x

    handles = quick.delay_many([((i,), {}) for i in range(300)])
    worker = Worker(redis_app, WorkerOptions(**{**FAST, "burst": True, "concurrency": 4}))
    asyncio.run(asyncio.wait_for(worker.run(), 20))
    assert [h.result(timeout=1) for h in handles] == list(range(300))
    # an hour-long timeout must not keep 300 finished jobs in the worker's memory
    assert len(worker.claimer._deadlines) <= 2 * 4 + 16


# -- bad jobs go to the dead-letter store, and the worker goes on -----------------------------


def test_an_unknown_task_is_dead_and_the_worker_goes_on(redis_app: App) -> None:
    @redis_app.task
    def known(x: int) -> int:
        return x + 1

    ghost = Job("ghost-1", "no_such_task", (1,), {}, "default", 3, int(time.time() * 1000))
    redis_app.submit([EnqueueItem("default", ghost.id, ghost.encode())])
    handle = known.delay_by(0.1, 1)  # after the ghost
    run_burst(redis_app)
    assert handle.result(timeout=1) == 2
    record = dead_record(redis_app, "ghost-1")
    assert record.failure is not None and record.failure.reason == "unknown-task"
    assert "no_such_task" in record.failure.message
    assert record.body == ghost.encode()
    with pytest.raises(TaskFailed):
        redis_app.job("ghost-1").result(timeout=1)
    assert_queue_empty(redis_app, dead=1)


def test_an_undecodable_payload_is_dead_with_its_bytes_and_the_worker_goes_on(
    redis_app: App, redis_client: redis.Redis, namespace: str
) -> None:
    @redis_app.task
    def known(x: int) -> int:
        return x + 1

    raw = b"\xc1 not msgpack \x00\xff"
    keys = NamespaceKeys(namespace).queue("default")
    redis_client.hset(keys.jobs, "garbage-1", raw)
    redis_client.zadd(keys.waiting, {"garbage-1": 0})  # due since 1970: claimed first
    handle = known.delay(41)
    run_burst(redis_app)
    assert handle.result(timeout=1) == 42
    record = dead_record(redis_app, "garbage-1")
    assert record.failure is not None and record.failure.reason == "undecodable"
    assert record.body == raw
    assert_queue_empty(redis_app, dead=1)


def test_an_ack_with_a_stale_token_is_refused(redis_app: App) -> None:
    @redis_app.task
    def noop() -> None:
        pass

    handle = noop.delay()
    broker = redis_app.broker
    batch = broker.claim(["default"], 1, 100, "test-worker")
    assert [c.job_id for c in batch.jobs] == [handle.id]
    old = batch.jobs[0].lease
    time.sleep(0.25)  # the lease ends
    assert broker.recover(["default"]) == 1
    assert broker.ack([Ack(old)]) == [False]
    assert handle.status() == "due"  # still there, for the next claim
    again = broker.claim(["default"], 1, 5000, "test-worker")
    assert [(c.job_id, c.attempt, c.crashes) for c in again.jobs] == [(handle.id, 2, 1)]
    assert broker.ack([Ack(old)]) == [False]  # and still refused once someone else holds it
    assert broker.ack([Ack(again.jobs[0].lease)]) == [True]


# -- wake-ups, sleeping until due, concurrency ------------------------------------------------


def pinger(app: App) -> tuple[Task[[], None], list[float]]:
    """A task that records when each of its jobs starts (monotonic seconds), and that record."""
    started: list[float] = []

    @app.task
    def ping() -> None:
        started.append(time.monotonic())

    return ping, started


def test_an_enqueue_wakes_an_idle_worker(
    redis_app: App, redis_client: redis.Redis, namespace: str
) -> None:
    ping, started = pinger(redis_app)
    with worker_thread(redis_app, poll_interval=5.0):
        wait_until_idle(redis_client, namespace)
        sent = time.monotonic()
        handle = ping.delay()
        handle.result(timeout=10)
    latency = started[0] - sent
    print(f"wake-up latency: {latency * 1000:.1f} ms (poll interval 5 s)")
    assert latency < 1.0, f"the job started {latency:.2f}s after enqueue: no wake-up"


@pytest.mark.parametrize("enqueued", ["while-idle", "before-start"])
def test_a_worker_sleeps_until_a_delayed_job_is_due(
    redis_app: App, redis_client: redis.Redis, namespace: str, enqueued: str
) -> None:
    ping, started = pinger(redis_app)
    if enqueued == "before-start":
        sent = time.monotonic()
        handle = ping.delay_by(0.8)
        with worker_thread(redis_app, poll_interval=5.0):
            handle.result(timeout=10)
        late = started[0] - sent - 0.8
    else:
        with worker_thread(redis_app, poll_interval=5.0):
            wait_until_idle(redis_client, namespace)
            sent = time.monotonic()
            handle = ping.delay_by(0.3)
            handle.result(timeout=10)
        late = started[0] - sent - 0.3
    print(f"delayed job started {late * 1000:.1f} ms after due (poll interval 5 s)")
    assert -0.01 <= late < 0.5, f"started {late:+.2f}s from its due time"


def test_a_wake_up_is_answered_by_a_claim_sent_before_the_due_time_it_names(
    redis_app: App,
) -> None:
    # the wake-up's delay was measured when it was sent: slept for exactly, it made jobs late
    worker = Worker(redis_app, WorkerOptions(**FAST))
    before = time.monotonic()
    worker.claimer.woken(1000)
    news = worker.claimer.inbox.get_nowait()
    assert isinstance(news, claimer.Wake)
    assert before + 1.0 - claimer.CLAIM_EARLY <= news.at < before + 1.0


def test_a_job_claimed_ahead_is_held_and_starts_at_its_due_time_never_before(
    redis_app: App, redis_client: redis.Redis, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # widened from 10 ms and 5 ms, to watch the job held
    monkeypatch.setattr(claimer, "CLAIM_AHEAD", 2.0)
    monkeypatch.setattr(claimer, "CLAIM_EARLY", 1.0)
    ping, started = pinger(redis_app)
    with worker_thread(redis_app, poll_interval=5.0):
        wait_until_idle(redis_client, namespace)
        sent = time.monotonic()
        handle = ping.delay_by(0.8)
        time.sleep(0.4)
        assert handle.status() == "running" and not started  # claimed, held under its lease
        handle.result(timeout=10)
    assert started[0] - sent >= 0.8, "started before its due time"
    assert started[0] - sent < 1.3


@pytest.mark.parametrize("how", ["stop", "cancel"])
def test_a_job_held_until_due_is_handed_back_on_a_stop_and_ends_on_a_cancel_without_running(
    redis_app: App, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.setattr(claimer, "CLAIM_AHEAD", 60.0)
    monkeypatch.setattr(claimer, "CLAIM_EARLY", 60.0)
    ran: list[int] = []

    @redis_app.task
    def ping() -> None:
        ran.append(1)

    handle = ping.delay_by(30)
    due = redis_app.broker.get("default", handle.id)
    assert due is not None and due.due_at_ms is not None
    with worker_thread(redis_app, grace=0.0, lease=1.0) as worker:
        deadline = time.monotonic() + 5
        while handle.status() != "running":
            assert time.monotonic() < deadline, "the job was not claimed ahead"
            time.sleep(0.02)
        if how == "cancel":
            handle.cancel()
            deadline = time.monotonic() + 5  # the lease renewal (every 1/3 s) brings the news
            while handle.status() != "cancelled":
                assert time.monotonic() < deadline, handle.status()
                time.sleep(0.02)
        worker.stop()
    assert ran == []
    record = redis_app.broker.get("default", handle.id)
    assert record is not None
    if how == "stop":  # back to waiting for the same due time, its attempt not counted
        assert (record.state, record.attempt) == ("scheduled", 0)
        assert record.due_at_ms is not None
        assert due.due_at_ms <= record.due_at_ms < due.due_at_ms + 1000
    else:
        assert record.state == "cancelled"


def test_concurrency_bounds_how_many_jobs_run_at_once(redis_app: App) -> None:
    lock = threading.Lock()
    now_running = 0
    most = 0

    @redis_app.task
    def nap() -> None:
        nonlocal now_running, most
        with lock:
            now_running += 1
            most = max(most, now_running)
        time.sleep(0.3)
        with lock:
            now_running -= 1

    handles = nap.delay_many([((), {})] * 8)
    started = time.monotonic()
    run_burst(redis_app, concurrency=4)
    elapsed = time.monotonic() - started
    for handle in handles:
        handle.result(timeout=1)
    print(f"8 jobs of 0.3 s with concurrency 4: {elapsed:.2f}s, at most {most} at once")
    assert most == 4
    assert elapsed < 2.0, f"{elapsed:.2f}s: the jobs did not run 4 at a time"
    assert_queue_empty(redis_app)


@pytest.mark.parametrize("kind", ["redis", "sqlite", "memory"])
def test_a_dead_job_put_back_wakes_an_idle_worker(
    make_app: Callable[[str], App], kind: str
) -> None:
    app = make_app(kind)
    ran: list[int] = []

    @app.task(max_retries=0)
    def once(n: int) -> int:
        ran.append(n)
        if len(ran) == 1:
            raise RuntimeError("the first time")
        return n

    handle = once.delay(7)
    # nothing else is due: after the job dies, the worker sleeps for its whole poll interval
    with worker_thread(app, poll_interval=60.0):
        deadline = time.monotonic() + 5
        while handle.status() != "dead":
            assert time.monotonic() < deadline, handle.status()
            time.sleep(0.02)
        assert app.inspector.requeue_dead("default", [handle.id]) == 1
        assert handle.result(timeout=10) == 7  # woken, not polled
    assert ran == [7, 7]
