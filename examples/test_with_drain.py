"""How to test code that enqueues taskq jobs: an in-memory app, a FakeClock, and ``drain``.

    pytest examples/test_with_drain.py

``drain(app)`` runs every job enqueued so far in the test's own thread, as a worker would: the
same retries, backoff, dead-letter reasons and stored results. With ``FakeClock`` it jumps over
delays and retry backoff instead of sleeping through them.
"""

from __future__ import annotations

import pytest

from taskq import App, TaskFailed
from taskq.testing import FakeClock, drain


@pytest.fixture
def app() -> App:
    return App("memory://", clock=FakeClock())


def test_a_delayed_job_runs_and_keeps_its_result(app: App) -> None:
    @app.task
    def greet(name: str) -> str:
        return f"Hello {name}"

    handle = greet.delay_by(3600, "Ada")  # an hour from now: drain moves the clock there
    report = drain(app)
    assert report.results == {handle.id: "Hello Ada"}
    assert handle.result(timeout=0) == "Hello Ada"


def test_a_failing_job_is_retried_then_dead(app: App) -> None:
    calls: list[int] = []

    @app.task(max_retries=2)
    def charge(amount: int) -> None:
        calls.append(amount)
        raise RuntimeError("card declined")

    handle = charge.delay(42)
    report = drain(app)
    assert calls == [42, 42, 42]  # the first attempt and two retries
    assert report.retries == 2
    assert report.dead[handle.id].reason == "exhausted"
    with pytest.raises(TaskFailed, match="card declined"):
        handle.result(timeout=0)


def test_jobs_enqueued_by_jobs_run_too(app: App) -> None:
    @app.task
    def leaf(n: int) -> int:
        return n * 2

    @app.task
    def fan_out(count: int) -> None:
        for n in range(count):
            leaf.delay(n)

    fan_out.delay(3)
    report = drain(app)
    assert sorted(v for v in report.results.values() if v is not None) == [0, 2, 4]
