"""A worker that loses its lease without dying: frozen by SIGSTOP past its lease, or cut off from
Redis by a proxy. Its writes are fenced off, and it lets go of the job before anyone reclaims it."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq import App
from taskq.worker.runner import STOP_BOUND
from tests.conftest import REDIS_URL
from tests.faults.fleet import Fleet, events
from tests.faults.helpers import processes, wait_for
from tests.faults.proxy import Proxy

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.timeout(60)]
REDIS_PORT = int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture
def fleet(tmp_path: Path, redis_app: App) -> Iterator[Fleet]:
    with processes() as spawn:
        yield Fleet(tmp_path, redis_app, spawn, REDIS_URL)


@pytest.mark.parametrize("mode", ["ack", "retry", "bury"])
def test_a_worker_frozen_past_its_lease_cannot_overwrite_the_new_owners_outcome(
    fleet: Fleet, mode: str
) -> None:
    stale = fleet.worker(lease="1s", ROLE="stale")
    handle = fleet.app.tasks["fenced"].delay("f", mode, 1.5)
    fleet.wait_started("f")
    stale.signal(signal.SIGSTOP)  # frozen mid-job, lease and all
    try:
        fresh = fleet.worker(lease="1s", ROLE="fresh")
        assert handle.result(timeout=15) == "fresh"  # reclaimed after the lease, and finished
        assert handle.status() == "succeeded"
    finally:
        stale.signal(signal.SIGCONT)
    # the stale worker wakes up, its job "finishes" there, and it tries to write its outcome
    wait_for(lambda: "f" in [t for t, _, _ in fleet.stamps("finished.txt")], 10, "stale finish")
    wait_for(lambda: events([stale], "lost", handle.id), 10, "the stale worker to let go")
    time.sleep(0.3)  # any write it still attempts would land now
    assert handle.result(timeout=1) == "fresh"
    assert handle.status() == "succeeded"
    assert fleet.counts() == (0, 0, 0, 0)  # not retried, not buried
    [started] = events([fresh], "started", handle.id)
    assert started["attempt"] == 2


@pytest.mark.parametrize("mode", ["ack", "retry", "bury"])
def test_a_stale_write_that_reaches_redis_is_refused_by_the_fencing_token(
    fleet: Fleet, mode: str
) -> None:
    """The stale worker's outcome is on the wire when its lease ends: Redis itself refuses it."""
    with Proxy(REDIS_PORT) as proxy:
        stale = fleet.worker(lease="2s", url=proxy.url(), ROLE="stale")
        handle = fleet.app.tasks["fenced"].delay("w", mode, 0.5)
        fleet.wait_started("w")
        proxy.stall()  # the outcome, written 0.5 s from now, waits in the proxy
        fresh = fleet.worker(lease="2s", ROLE="fresh")
        assert handle.result(timeout=15) == "fresh"
        proxy.heal()  # now the stale worker's write arrives, long after its lease ended
        refused = wait_for(
            lambda: [e for e in events([stale], "lost", handle.id) if "stale" in e["message"]],
            10,
            "the stale write to be refused",
        )
    print(refused[0]["message"])
    assert handle.result(timeout=1) == "fresh" and handle.status() == "succeeded"
    assert fleet.counts() == (0, 0, 0, 0)
    [started] = events([fresh], "started", handle.id)
    assert started["attempt"] == 2


def _cut_off_worker(
    fleet: Fleet, proxy: Proxy, task: str, how: str
) -> tuple[str, float, list[dict[str, Any]]]:
    """Start a job on a worker behind ``proxy``, break the proxy, let a direct worker finish it.

    Returns the job id, when (true time) the direct worker started it, and the cut-off worker's
    "lost" events.
    """
    cut_off = fleet.worker(lease="1s", url=proxy.url())
    handle = fleet.app.tasks[task].delay("c", 3.0)
    [owner] = fleet.wait_started("c")
    assert owner == cut_off.pid
    getattr(proxy, how)()  # stall or cut: the lease can no longer be renewed
    direct = fleet.worker(lease="1s")
    assert handle.result(timeout=15) == str(direct.pid)
    [_, second] = fleet.stamps("started.txt")
    assert second[1] == direct.pid
    lost = wait_for(lambda: events([cut_off], "lost", handle.id), 5, "the lost-lease log line")
    proxy.heal()
    return handle.id, second[2], lost


@pytest.mark.parametrize("how", ["stall", "cut"])
def test_an_async_job_cut_off_from_redis_is_cancelled_before_another_worker_reclaims_it(
    fleet: Fleet, how: str
) -> None:
    with Proxy(REDIS_PORT) as proxy:
        _, reclaimed_at, lost = _cut_off_worker(fleet, proxy, "aslow", how)
        [(_, _, cancelled_at)] = fleet.stamps("cancelled.txt")
    print(f"cancelled {reclaimed_at - cancelled_at:.3f}s before the other worker started it")
    # the worker lets go at 80% of the lease; Redis frees the job at 100%: a margin shows
    assert reclaimed_at - float(lost[0]["ts"]) > 0.05
    assert cancelled_at < reclaimed_at
    assert [t for t, _, _ in fleet.stamps("finished.txt")] == ["c"]  # only the new owner's run
    assert fleet.counts() == (0, 0, 0, 0)


@pytest.mark.parametrize("how", ["stall", "cut"])
def test_a_sync_job_cut_off_from_redis_has_its_outcome_dropped_and_logged(
    fleet: Fleet, how: str
) -> None:
    with Proxy(REDIS_PORT) as proxy:
        job_id, reclaimed_at, lost = _cut_off_worker(fleet, proxy, "slow", how)
        # the thread cannot be stopped: it finishes too, but its outcome is never written
        wait_for(lambda: len(fleet.stamps("finished.txt")) == 2, 10, "both runs to finish")
    print(f"let go {reclaimed_at - float(lost[0]['ts']):.3f}s before the other worker started it")
    assert reclaimed_at - float(lost[0]["ts"]) > 0.05  # 80% of the lease against 100%
    assert "not recorded" in str(lost[0]["message"])
    record = fleet.app.inspector.get("default", job_id)
    assert record is not None and record.state == "succeeded"
    assert fleet.counts() == (0, 0, 0, 0)


def test_a_stop_while_redis_stalls_ends_the_worker_in_bounded_time(fleet: Fleet) -> None:
    """SIGTERM with every byte to Redis held (a dead network path): the worker cannot write
    its last outcome, and exits anyway once the stop's bound has passed, instead of waiting out
    its client's timeouts and retries (minutes). The job runs again after its lease."""
    with Proxy(REDIS_PORT) as proxy:
        cut_off = fleet.worker(lease="30s", grace="1s", url=proxy.url())
        handle = fleet.app.tasks["slow"].delay("s", 0.5)
        fleet.wait_started("s")
        proxy.stall()  # the outcome, due in 0.5 s, can never be written
        stopped = time.monotonic()
        cut_off.signal(signal.SIGTERM)
        code = cut_off.wait(timeout=1 + STOP_BOUND + 10)
        took = time.monotonic() - stopped
        proxy.reset()  # the bytes it held die with their connections, as on a dead path
    print(f"exited {took:.1f}s after SIGTERM, with code {code}")
    assert took < 1 + STOP_BOUND + 3
    assert code == 1  # it could not stop cleanly
    [overran] = [e for e in events([cut_off], "log") if "did not answer" in e["message"]]
    assert overran["level"] == "error" and "run again when their leases end" in overran["message"]
    assert [t for t, _, _ in fleet.stamps("finished.txt")] == ["s"]  # it ran; not recorded
    assert handle.status() == "running"  # until its lease ends
