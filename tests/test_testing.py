"""``taskq.testing``: drain works on every broker, from async tests, and without a FakeClock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from taskq import App
from taskq.testing import FakeClock, drain


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_drain_runs_due_jobs_and_leaves_scheduled_ones_without_a_fake_clock(
    make_app: Callable[[str], App], kind: str
) -> None:
    app = make_app(kind)

    @app.task
    def double(n: int) -> int:
        return 2 * n

    now = double.delay(21)
    later = double.delay_by(3600, 1)
    report = drain(app)
    assert report.results == {now.id: 42}
    assert report.scheduled == 1
    assert later.status() == "scheduled"


def test_drain_from_inside_a_running_event_loop() -> None:
    app = App("memory://", clock=FakeClock(), env={})

    @app.task
    async def hello(name: str) -> str:
        return f"hello {name}"

    async def test_body() -> dict[str, object]:
        handle = await hello.adelay("async")
        return {handle.id: "hello async"} if drain(app).results[handle.id] else {}

    assert list(asyncio.run(test_body()).values()) == ["hello async"]


def test_unknown_tasks_go_dead_in_drain_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    producer = App(url, env={})

    @producer.task(name="gone")
    def gone() -> None: ...

    handle = gone.delay()
    consumer = App(url, env={})  # the same file, a registry without "gone"
    report = drain(consumer)
    assert report.dead[handle.id].reason == "unknown-task"


def test_fake_clock_refuses_to_go_back() -> None:
    clock = FakeClock(100.0)
    clock.advance(5)
    assert clock() == 105.0
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_drain_says_when_it_stopped_at_max_jobs_with_jobs_still_waiting() -> None:
    app = App("memory://", clock=FakeClock(), env={})

    @app.task
    def again(n: int) -> int:
        again.delay_by(60, n + 1)  # a job that enqueues its successor, forever
        return n

    again.delay(0)
    report = drain(app, max_jobs=5)
    assert sorted(report.results.values()) == [0, 1, 2, 3, 4]
    assert report.hit_max_jobs

    quiet = App("memory://", clock=FakeClock(), env={})

    @quiet.task
    def once() -> None: ...

    once.delay_many([((), {})] * 5)
    assert not drain(quiet, max_jobs=5).hit_max_jobs  # all ran: nothing was left waiting
