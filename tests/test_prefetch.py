"""Ready jobs: a worker claims beyond its slots while jobs are short, runs no more than its
concurrency at once, and hands back, cancels or times out a ready job as if it had just been
claimed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from taskq import App, TaskFailed
from taskq.worker import Worker
from taskq.worker.prefetch import ROUND_TRIPS, Prefetch
from taskq.worker.slots import Slots

from .test_worker import assert_queue_empty, run_burst, worker_thread

# -- the prefetch's size ---------------------------------------------------------------------


def test_no_ready_jobs_until_a_job_has_run_and_a_claim_was_timed() -> None:
    prefetch = Prefetch(concurrency=10, most=40)
    assert prefetch.size == 0
    prefetch.claimed(0.001)
    assert prefetch.size == 0
    prefetch.ran(0.000_05)
    assert prefetch.size == 40  # short jobs: as many as allowed


def test_the_prefetch_covers_two_round_trips_of_the_slots_work() -> None:
    prefetch = Prefetch(concurrency=4, most=100)
    prefetch.claimed(0.002)
    prefetch.ran(0.001)
    assert prefetch.size == 4 * ROUND_TRIPS * 2 == 16


def test_slow_jobs_get_no_ready_jobs_and_one_slow_job_cuts_the_prefetch_at_once() -> None:
    slow = Prefetch(concurrency=10, most=40)
    slow.claimed(0.001)
    slow.ran(0.5)
    assert slow.size == 0

    mixed = Prefetch(concurrency=10, most=40)
    mixed.claimed(0.001)
    for _ in range(50):
        mixed.ran(0.000_1)
    assert mixed.size == 40
    mixed.ran(2.0)
    assert mixed.size == 0


def test_a_prefetch_of_zero_holds_none() -> None:
    prefetch = Prefetch(concurrency=10, most=0)
    prefetch.claimed(1.0)
    prefetch.ran(0.000_1)
    assert prefetch.size == 0


# -- slots -----------------------------------------------------------------------------------


def test_a_thread_waits_for_a_slot_given_back() -> None:
    slots = Slots(1)
    slots.take()
    took = threading.Event()

    def second() -> None:
        slots.take()
        took.set()

    threading.Thread(target=second, daemon=True).start()
    assert not took.wait(0.1)
    slots.give()
    assert took.wait(5)
    assert slots.free == 0


def test_a_coroutine_awaits_a_slot_a_thread_gives_back_and_a_cancelled_one_takes_none() -> None:
    async def scenario() -> None:
        slots = Slots(1)
        slots.take()  # a task thread runs a job
        first = asyncio.create_task(slots.atake())
        second = asyncio.create_task(slots.atake())
        await asyncio.sleep(0.05)
        assert not first.done() and not second.done()
        first.cancel()  # e.g. a cancel asked while it waited
        await asyncio.gather(first, return_exceptions=True)
        threading.Thread(target=slots.give).start()  # the thread's job ended
        await asyncio.wait_for(second, 5)
        assert slots.free == 0
        slots.give()
        assert slots.free == 1  # nothing leaked, nothing counted twice

    asyncio.run(scenario())


def test_a_slot_handed_to_a_coroutine_cancelled_meanwhile_is_passed_on() -> None:
    async def scenario() -> None:
        slots = Slots(1)
        slots.take()
        waiting = asyncio.create_task(slots.atake())
        await asyncio.sleep(0.01)
        slots.give()  # handed over on the loop's next turn...
        waiting.cancel()  # ...but the waiter is cancelled first
        await asyncio.gather(waiting, return_exceptions=True)
        await asyncio.sleep(0.01)
        assert slots.free == 1

    asyncio.run(scenario())


# -- a worker with ready jobs, on the real Redis ---------------------------------------------


@pytest.fixture
def prefetch_of(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set a worker's prefetch size outright (it is measured otherwise)."""

    def fix(size: int) -> None:
        monkeypatch.setattr(Prefetch, "size", property(lambda self: size))

    yield fix


def spy_claims(app: App, claimed: dict[str, float] | None = None) -> list[int]:
    """Record how many jobs each claim asked the real broker for (and, in ``claimed``, when
    each job was claimed)."""
    counts: list[int] = []
    claim = app.broker.claim

    def recording(queues: Any, count: int, *args: Any) -> Any:
        counts.append(count)
        batch = claim(queues, count, *args)
        if claimed is not None:
            claimed.update({job.job_id: time.monotonic() for job in batch.jobs})
        return batch

    app.broker.claim = recording  # type: ignore[method-assign]
    return counts


@pytest.mark.parametrize("kinds", ["sync", "async", "mixed"])
def test_ready_jobs_wait_for_a_slot_concurrency_still_bounds_what_runs(
    redis_app: App, prefetch_of: Any, kinds: str
) -> None:
    prefetch_of(6)
    lock = threading.Lock()
    now = most = 0

    def enter() -> None:
        nonlocal now, most
        with lock:
            now += 1
            most = max(most, now)

    def leave() -> None:
        nonlocal now
        with lock:
            now -= 1

    @redis_app.task
    def nap() -> None:
        enter()
        time.sleep(0.1)
        leave()

    @redis_app.task
    async def anap() -> None:
        enter()
        await asyncio.sleep(0.1)
        leave()

    tasks = {"sync": [nap], "async": [anap], "mixed": [nap, anap]}[kinds]
    handles = [tasks[i % len(tasks)].delay() for i in range(12)]
    counts = spy_claims(redis_app)
    run_burst(redis_app, concurrency=2)
    for handle in handles:
        assert handle.result(timeout=1) is None
    assert counts[0] == 4, "a claim takes half of what the worker may hold: 2 slots + 6 ready"
    assert most == 2, f"{most} jobs ran at once with concurrency 2"
    assert_queue_empty(redis_app)


def blocker_and_others(app: App, kind: str) -> tuple[threading.Event, list[str], Any, Any]:
    """A task that holds the one slot until ``release`` is set, and one that records its runs."""
    release = threading.Event()
    ran: list[str] = []

    @app.task
    def hold() -> None:
        ran.append("hold")
        release.wait(10)

    if kind == "sync":

        @app.task
        def other(n: int) -> None:
            ran.append(f"other {n}")

        return release, ran, hold, other

    @app.task(name="other")
    async def aother(n: int) -> None:
        ran.append(f"other {n}")

    return release, ran, hold, aother


def wait_for(predicate: Any, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@dataclass
class Scene:
    """A worker with one slot, running ``held`` until ``release`` is set, with ``ready`` jobs
    claimed behind it; ``ran`` lists what ran."""

    worker: Worker
    release: threading.Event
    ran: list[str]
    held: Any
    ready: list[Any]


@contextmanager
def ready_behind_a_running_job(
    app: App, kind: str, prefetch_of: Any, ready: int, **options: Any
) -> Iterator[Scene]:
    prefetch_of(2 * ready)  # claims of half that: in two
    release, ran, hold, other = blocker_and_others(app, kind)
    held = hold.delay()
    with worker_thread(app, concurrency=1, **options) as worker:
        wait_for(lambda: ran == ["hold"], "the first job did not start")
        others = [other.delay(n) for n in range(ready)]
        wait_for(lambda: worker.in_hand == 1 + ready, "the worker did not claim ready jobs")
        assert worker.running == 1
        yield Scene(worker, release, ran, held, others)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stop_hands_back_ready_jobs_at_once_unstarted_and_lets_the_running_one_finish(
    redis_app: App, prefetch_of: Any, kind: str
) -> None:
    with ready_behind_a_running_job(redis_app, kind, prefetch_of, 3, grace=10.0) as scene:
        scene.worker.stop()
        # handed back before the running job ends: another worker can run them meanwhile
        wait_for(lambda: redis_app.inspector.counts("default").due == 3, "not handed back")
        assert scene.held.status() == "running"
        scene.release.set()
    assert scene.held.status() == "succeeded"
    assert scene.ran == ["hold"]
    for handle in scene.ready:
        record = redis_app.broker.get("default", handle.id)
        assert record is not None and (record.state, record.attempt) == ("due", 0)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cancel_of_a_ready_job_ends_it_cancelled_without_running(
    redis_app: App, prefetch_of: Any, kind: str
) -> None:
    with ready_behind_a_running_job(redis_app, kind, prefetch_of, 1, lease=1.0) as scene:
        [ready] = scene.ready
        ready.cancel()
        # the lease renewal (every 1/3 s) brings the news; an async one ends at once
        time.sleep(0.8)
        scene.release.set()
        wait_for(lambda: ready.status() == "cancelled", f"ready job is {ready.status()}")
        scene.held.result(timeout=5)
    assert scene.ran == ["hold"]


def test_a_ready_jobs_timeout_counts_from_its_start_not_its_claim(
    redis_app: App, prefetch_of: Any
) -> None:
    prefetch_of(1)
    ended: list[float] = []

    @redis_app.task
    def first() -> None:
        time.sleep(0.6)
        ended.append(time.monotonic())

    @redis_app.task(timeout=0.4, max_retries=0)
    def second() -> str:
        time.sleep(0.1)
        return "in time"

    one = first.delay()
    two = second.delay()
    claimed: dict[str, float] = {}
    spy_claims(redis_app, claimed)
    run_burst(redis_app, concurrency=1)
    # the second was claimed while the first ran, and waited for the slot, held ready
    assert claimed[two.id] < ended[0] - 0.3
    assert one.result(timeout=1) is None
    assert two.result(timeout=1) == "in time"


def test_a_worker_prefetches_short_jobs_and_not_slow_ones(redis_app: App) -> None:
    @redis_app.task
    def quick() -> None:
        pass

    @redis_app.task
    def slow() -> None:
        time.sleep(0.2)

    quick.delay_many([((), {})] * 300)
    counts = spy_claims(redis_app)
    run_burst(redis_app, concurrency=2)
    print(f"claims for 300 short jobs, concurrency 2: {counts}")
    assert max(counts) > 2, "short jobs: claims take more than the free slots"
    assert max(counts) <= 2 + 4 * 2, "no more than 4 x concurrency ready"

    slow.delay_many([((), {})] * 6)
    counts.clear()
    run_burst(redis_app, concurrency=2)
    print(f"claims for 6 jobs of 0.2 s, concurrency 2: {counts}")
    assert max(counts) <= 2, "slow jobs: no claims beyond the free slots"


def test_failures_of_ready_jobs_are_recorded_like_any(redis_app: App, prefetch_of: Any) -> None:
    prefetch_of(10)

    @redis_app.task(max_retries=0)
    def boom(n: int) -> None:
        raise ValueError(f"boom {n}")

    handles = [boom.delay(n) for n in range(10)]
    run_burst(redis_app, concurrency=2)
    for n, handle in enumerate(handles):
        with pytest.raises(TaskFailed, match=f"boom {n}"):
            handle.result(timeout=1)
    assert_queue_empty(redis_app, dead=10)


def test_a_stop_hands_back_a_ready_job_that_waited_for_a_slot_on_its_task_thread(
    redis_app: App, prefetch_of: Any
) -> None:
    # a plain task's ready job, taken by an idle task thread, waits there for the slot an async
    # job holds: a stop's drain cannot take it back, so it must not start once the slot frees
    prefetch_of(2)
    release = threading.Event()
    ran: list[str] = []

    @redis_app.task
    async def ahold() -> None:
        ran.append("ahold")
        while not release.is_set():
            await asyncio.sleep(0.01)

    @redis_app.task
    def other() -> None:
        ran.append("other")

    held = ahold.delay()
    with worker_thread(redis_app, concurrency=1, grace=10.0) as worker:
        wait_for(lambda: ran == ["ahold"], "the async job did not start")
        ready = other.delay()
        wait_for(lambda: worker.in_hand == 2, "the worker did not claim a ready job")
        time.sleep(0.2)  # the idle task thread has taken it, and waits for the slot
        worker.stop()
        release.set()
    assert held.status() == "succeeded"
    assert ran == ["ahold"]
    record = redis_app.broker.get("default", ready.id)
    assert record is not None and (record.state, record.attempt) == ("due", 0)
