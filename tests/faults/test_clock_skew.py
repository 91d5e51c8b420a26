"""Producers and workers whose wall clocks are five minutes off: no job runs early or late and no
live lease is reclaimed, because every time decision is made by Redis ``TIME``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq import App
from tests.conftest import REDIS_URL
from tests.faults.fleet import Fleet, events
from tests.faults.helpers import Proc, processes, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.timeout(60)]

SKEW = 300.0  # seconds
SHIM = str(Path(__file__).parent / "skew")  # its sitecustomize.py offsets time.time()


@pytest.fixture
def fleet(tmp_path: Path, redis_app: App) -> Iterator[Fleet]:
    with processes() as spawn:
        yield Fleet(tmp_path, redis_app, spawn, REDIS_URL)


def skewed_worker(fleet: Fleet, offset: float, lease: str = "1s") -> Proc:
    return fleet.worker(lease=lease, PYTHONPATH=SHIM, TASKQ_TEST_CLOCK_OFFSET=str(offset))


def test_skewed_producers_and_workers_run_delayed_jobs_on_time(fleet: Fleet) -> None:
    ahead = skewed_worker(fleet, +SKEW)
    behind = skewed_worker(fleet, -SKEW)
    workers = [ahead, behind]
    wait_for(lambda: all(p.events() for p in workers), 10, "both workers to start")
    for proc, offset in ((ahead, SKEW), (behind, -SKEW)):
        first = proc.events()[0]
        assert abs(float(first["ts"]) - time.time() - offset) < 30, "the shim is not in effect"

    enqueued: dict[str, float] = {}
    for n, offset in enumerate([SKEW, -SKEW, SKEW, -SKEW, 0.0, SKEW]):
        producer = App(REDIS_URL, namespace=fleet.app.namespace, env={}, clock=_skewed(offset))
        producer.task(name="slow")(_slow)
        try:
            tag = f"d{n}"
            enqueued[tag] = time.time()
            producer.tasks["slow"].delay_by(1.5, tag, 0.0)
        finally:
            producer.close()
        time.sleep(0.1)
    wait_for(lambda: len(fleet.stamps("started.txt")) == len(enqueued), 15, "every job to run")
    for tag, _pid, started in fleet.stamps("started.txt"):
        late = started - enqueued[tag] - 1.5
        print(f"{tag} started {late * 1000:+.1f}ms after its due time")
        assert late >= -0.005, f"{tag} ran {-late:.3f}s early"
        assert late < 2.0, f"{tag} ran {late:.3f}s late"
    assert {pid for _, pid, _ in fleet.stamps("started.txt")} <= {p.pid for p in workers}


def test_a_worker_whose_clock_is_behind_never_reclaims_a_live_lease(fleet: Fleet) -> None:
    owner = skewed_worker(fleet, +SKEW, lease="600ms")
    handle = fleet.app.tasks["slow"].delay("long", 3.0)
    fleet.wait_started("long")
    others = [skewed_worker(fleet, -SKEW, lease="600ms"), skewed_worker(fleet, +SKEW, "600ms")]

    assert handle.result(timeout=15) == str(owner.pid)
    assert len(fleet.stamps("started.txt")) == 1
    assert not events([owner, *others], "lost")
    [executed] = events([owner], "executed", handle.id)
    assert executed["attempt"] == 1
    assert fleet.counts() == (0, 0, 0, 0)


def _skewed(offset: float) -> Callable[[], float]:
    return lambda: time.time() + offset


def _slow(tag: str, seconds: float) -> str:
    return tag
