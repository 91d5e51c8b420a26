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


def assert_exactly_once_unless_lost(fleet: Fleet, ids: dict[str, str], workers: list[Proc]) -> int:
    """Every job (tag -> job id) ran; a job ran twice only if its lease truly expired: Redis's own
    record says it was claimed again (attempt 2 or more) while no attempt failed (so no retry
    explains that claim: only a recovered lease does), and some worker logged losing that lease.
    Returns how many jobs Redis claimed more than once (expired leases)."""
    ran = fleet.ran()
    missing = set(ids) - set(ran)
    assert not missing, f"{len(missing)} jobs lost, e.g. {sorted(missing)[:5]}"
    inspector = fleet.app.inspector
    failed = sum(minute.failed for minute in inspector.rates("default", 60))
    assert failed == 0, f"{failed} attempts failed: then a job claimed again may be a retry"
    records = {tag: inspector.get("default", job_id) for tag, job_id in ids.items()}
    claims = {tag: r.attempt for tag, r in records.items() if r and r.state == "succeeded"}
    assert set(claims) == set(ids), "a job that ran has no succeeded record"
    reclaimed = {tag for tag, attempts in claims.items() if attempts > 1}
    twice = {tag for tag, count in ran.items() if count > 1}
    assert twice <= reclaimed, f"ran twice, claimed once by Redis: {sorted(twice - reclaimed)[:5]}"
    lost = {str(e.get("job_id")) for e in events(workers, "lost")}
    unlogged = {ids[tag] for tag in twice} - lost
    assert not unlogged, f"duplicates without a lost lease logged: {sorted(unlogged)[:5]}"
    print(f"{len(twice)} jobs ran twice; Redis claimed {len(reclaimed)} again (expired leases)")
    return len(reclaimed)


def enqueue(fleet: Fleet, tags: list[str], seconds: float) -> dict[str, str]:
    """Enqueue ``short`` jobs whose ids are derived from their tags; returns tag -> job id."""
    task = fleet.app.tasks["short"]
    ids = {tag: f"{fleet.app.namespace}-{tag}" for tag in tags}
    for tag in tags:
        task.with_options(job_id=ids[tag]).delay(tag, seconds)
    return ids


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
    stop = threading.Event()
    with processes() as spawn:
        fleet = Fleet(tmp_path, app, spawn, aof_redis.url)
        first = [str(n) for n in range(2000)]
        handles = fleet.app.tasks["short"].delay_many([((t, 0.01), {}) for t in first])
        ids = {tag: handle.id for tag, handle in zip(first, handles, strict=True)}
        workers = [fleet.worker("--concurrency", "4", lease="5s") for _ in range(2)]

        def produce() -> None:  # a producer that keeps enqueueing across the crash
            n = 0
            while not stop.is_set() and n < 1000:
                tag = f"p{n}"
                try:
                    ids.update(enqueue(fleet, [tag], 0.003))
                except BrokerError:
                    continue  # the same id again: written at most once
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
            wait_for(lambda: set(fleet.ran()) >= set(ids), 40, "every job to run")
            assert_exactly_once_unless_lost(fleet, ids, workers)
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
    ids = enqueue(fleet, tags, 0.02)
    port = int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    rng = random.Random(7)
    with Proxy(port) as one, Proxy(port) as two:
        proxies = [one, two]
        workers = [fleet.worker("--concurrency", "4", lease="1s", url=p.url()) for p in proxies]
        deadline = time.monotonic() + 60
        faults = 0
        kinds = ["latency", "reset", "stall", "long-stall"]
        reset_at: list[tuple[Proxy, int]] = []  # a proxy that reset connections, and its count
        long_stalls = 0  # begun while plenty of jobs were left, so the worker held some
        while len(set(fleet.ran())) < len(tags) and time.monotonic() < deadline:
            proxy = rng.choice(proxies)
            fault = kinds[faults % len(kinds)]
            if fault == "latency":
                proxy.latency = rng.uniform(0.005, 0.05)
            elif fault == "reset":
                before = proxy.resets
                proxy.reset()
                if proxy.resets > before:
                    reset_at.append((proxy, proxy.connections))
            else:  # a long stall outlives the 1 s lease: that worker's jobs are reclaimed
                long_stalls += fault == "long-stall" and len(set(fleet.ran())) < len(tags) - 200
                proxy.stall()
                time.sleep(0.3 if fault == "stall" else 1.5)
            faults += 1
            time.sleep(rng.uniform(0.1, 0.4))
            proxy.heal()
        for proxy in proxies:
            proxy.heal()
        wait_for(lambda: set(fleet.ran()) >= set(tags), 40, "every job to run")
        expired = assert_exactly_once_unless_lost(fleet, ids, workers)
        lost = len({e.get("job_id") for e in events(workers, "lost")})
        delayed, held = sum(p.delayed for p in proxies), sum(p.held for p in proxies)
        resets = sum(p.resets for p in proxies)
        print(
            f"{faults} faults: {delayed} chunks delayed, {held} held by stalls, {resets} "
            f"connections reset, {long_stalls} long stalls; {lost} jobs whose lease a worker "
            f"lost, {expired} whose lease expired in Redis"
        )
        assert delayed and held and resets, "a fault never hit live traffic"
        assert reset_at, "no reset found a connection to cut"
        for proxy, connections in reset_at:  # the worker reconnected, without a restart
            assert proxy.connections > connections, "no new connection after a reset"
        assert all(w.alive() for w in workers), "a worker died of the faults"
        # a stall longer than the lease made its worker let go, and Redis hand the jobs over
        assert long_stalls, "no long stall came while jobs were left"
        assert lost and expired, "a stall past the lease lost no lease"
        wait_for(lambda: fleet.counts() == (0, 0, 0, 0), 20, "the queue to empty")
