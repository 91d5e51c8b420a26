"""Faults while jobs flow: stop signals, a Redis crash and restart (AOF, fsync always), and a
flaky network (latency, stalls, resets). Nothing is lost; a duplicate needs a lost lease."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import App, BrokerError
from tests.conftest import REDIS_URL, RedisServer
from tests.faults.fleet import Fleet, events
from tests.faults.helpers import Proc, processes, wait_for
from tests.faults.proxy import Proxy

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.timeout(120)]


def assert_exactly_once_unless_lost(fleet: Fleet, tags: list[str], workers: list[Proc]) -> int:
    """Every job ran; a job ran twice only if some worker logged losing its lease. Returns the
    number of duplicates."""
    ran = fleet.ran()
    missing = set(tags) - set(ran)
    assert not missing, f"{len(missing)} jobs lost, e.g. {sorted(missing)[:5]}"
    twice = {t for t, c in ran.items() if c > 1}
    if twice:
        by_tag = {f"{fleet.app.namespace}-{t}" for t in twice}
        lost = {str(e.get("job_id")) for e in events(workers, "lost")}
        assert by_tag <= lost, f"duplicates without a lost lease: {sorted(by_tag - lost)[:5]}"
    return len(twice)


def enqueue(fleet: Fleet, tags: list[str], seconds: float) -> None:
    """Enqueue ``short`` jobs whose ids are derived from their tags (so logs name them)."""
    task = fleet.app.tasks["short"]
    ns = fleet.app.namespace
    for tag in tags:
        task.with_options(job_id=f"{ns}-{tag}").delay(tag, seconds)


@pytest.fixture
def fleet(tmp_path: Path, redis_app: App) -> Iterator[Fleet]:
    with processes() as spawn:
        yield Fleet(tmp_path, redis_app, spawn, REDIS_URL)


@pytest.mark.parametrize(
    ("task", "seconds", "grace", "jobs", "concurrency"),
    [("short", 0.01, "5s", 2000, "4"), ("ashort", 0.3, "100ms", 600, "20")],
    ids=["jobs-finish-within-grace", "async-jobs-handed-back"],
)
def test_sigterm_under_load_loses_and_duplicates_nothing(
    fleet: Fleet, task: str, seconds: float, grace: str, jobs: int, concurrency: str
) -> None:
    tags = [str(n) for n in range(jobs)]
    fleet.app.tasks[task].delay_many([((t, seconds), {}) for t in tags])
    workers: list[Proc] = []
    rng = random.Random(3)
    deadline = time.monotonic() + 40
    while len(fleet.ran()) < len(tags):
        assert time.monotonic() < deadline, f"stuck at {len(fleet.ran())} jobs"
        flags = ("--concurrency", concurrency)
        batch = [fleet.worker(*flags, lease="5s", grace=grace) for _ in range(2)]
        workers += batch
        for proc in batch:  # its first line comes once its signal handlers are in place
            wait_for(lambda p=proc: p.events(), 20, "a worker to start")  # type: ignore[misc]
        time.sleep(rng.uniform(0.2, 0.8))  # while it claims and runs jobs
        for proc in batch:
            proc.signal(signal.SIGTERM)
        for proc in batch:
            assert proc.wait(10) == 0, proc.text()[-2000:]
    assert max(fleet.ran().values()) == 1, "a gracefully stopped worker's job ran twice"
    assert not events(workers, "lost")
    assert fleet.counts() == (0, 0, 0, 0)
    handed_back = sum(p.text().count("handing back") for p in workers)
    print(f"{len(workers)} workers stopped while {jobs} jobs ran; {handed_back} handed back")
    assert handed_back or grace != "100ms"


@pytest.fixture
def aof_redis() -> Iterator[RedisServer]:
    with RedisServer(appendonly=True, extra=["--appendfsync", "always"]) as server:
        yield server


def test_a_redis_crash_and_restart_under_load_keeps_every_job(
    aof_redis: RedisServer, namespace: str, tmp_path: Path
) -> None:
    app = App(aof_redis.url, namespace=namespace, env={})
    written: list[str] = []
    stop = threading.Event()
    with processes() as spawn:
        fleet = Fleet(tmp_path, app, spawn, aof_redis.url)
        first = [str(n) for n in range(2000)]
        fleet.app.tasks["short"].delay_many([((t, 0.01), {}) for t in first])
        workers = [fleet.worker("--concurrency", "4", lease="5s") for _ in range(2)]

        def produce() -> None:  # a producer that keeps enqueueing across the crash
            n = 0
            while not stop.is_set() and n < 1000:
                tag = f"p{n}"
                try:
                    enqueue(fleet, [tag], 0.003)
                except BrokerError:
                    continue  # the same id again: written at most once
                written.append(tag)
                n += 1
                time.sleep(0.002)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        try:
            wait_for(lambda: len(fleet.ran()) > 300, 20, "jobs to flow")
            assert len(fleet.ran()) < len(first), "the crash must come while jobs flow"
            aof_redis.kill()  # no shutdown: only what was fsynced survives
            time.sleep(1.0)
            aof_redis.start()
            producer.join(60)
            assert not producer.is_alive(), "the producer never finished"
            tags = first + written
            wait_for(lambda: set(fleet.ran()) >= set(tags), 40, "every job to run")
            dupes = assert_exactly_once_unless_lost(fleet, tags, workers)
            print(f"{len(tags)} jobs, {dupes} duplicates after a Redis crash")
            for proc in workers:
                assert proc.alive(), proc.text()[-2000:]  # reconnected, never restarted
            wait_for(lambda: fleet.counts() == (0, 0, 0, 0), 10, "the queue to empty")
        finally:
            stop.set()
            producer.join(10)
            app.close()


def test_latency_stalls_and_resets_lose_nothing_and_duplicate_only_on_lost_leases(
    fleet: Fleet,
) -> None:
    tags = [str(n) for n in range(2000)]
    enqueue(fleet, tags, 0.02)
    port = int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    rng = random.Random(7)
    with Proxy(port) as one, Proxy(port) as two:
        proxies = [one, two]
        workers = [fleet.worker("--concurrency", "4", lease="1s", url=p.url()) for p in proxies]
        deadline = time.monotonic() + 60
        faults = 0
        kinds = ["latency", "reset", "stall", "long-stall"]
        while len(set(fleet.ran())) < len(tags) and time.monotonic() < deadline:
            proxy = rng.choice(proxies)
            fault = kinds[faults % len(kinds)]
            if fault == "latency":
                proxy.latency = rng.uniform(0.005, 0.05)
            elif fault == "reset":
                proxy.reset()
            else:  # a long stall outlives the 1 s lease: that worker's jobs are reclaimed
                proxy.stall()
                time.sleep(0.3 if fault == "stall" else 1.5)
            faults += 1
            time.sleep(rng.uniform(0.1, 0.4))
            proxy.heal()
        for proxy in proxies:
            proxy.heal()
        wait_for(lambda: set(fleet.ran()) >= set(tags), 40, "every job to run")
        dupes = assert_exactly_once_unless_lost(fleet, tags, workers)
        lost = len({e.get("job_id") for e in events(workers, "lost")})
        print(f"{faults} faults: {dupes} duplicates, {lost} jobs whose lease a worker lost")
        wait_for(lambda: fleet.counts() == (0, 0, 0, 0), 20, "the queue to empty")
