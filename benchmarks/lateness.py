"""Lateness of delayed jobs (start inside the task minus due time), idle and under a job stream."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .common import Fresh, Row, Settings, fresh, median, percentile, skipped
from .enqueue import PAYLOAD
from .tasks import lateness_key
from .workers import WorkerProcess

LOAD_RATE = 5000.0  # no-op jobs/s flowing through the worker while the delayed jobs wait
LOAD_BATCH = 50  # no-op jobs per delay_many() call of the load (one call every 10 ms)
SPACING = 0.01  # seconds between two delayed jobs' enqueues
DELAYS_MS = (200, 1200)  # each delayed job's delay, uniform, whole milliseconds


def _stream(f: Fresh, stop: threading.Event, rate: list[float]) -> None:
    """Enqueue no-op jobs at :data:`LOAD_RATE` (in batches: one producer thread could not send
    that many one by one) until ``stop``; appends the rate it reached to ``rate``."""
    noop = f.app.tasks["noop"]
    batch: list[tuple[tuple[str], dict[str, str]]] = [((PAYLOAD,), {})] * LOAD_BATCH
    started = time.perf_counter()
    sent = 0
    while not stop.is_set():
        noop.delay_many(batch)
        sent += LOAD_BATCH
        pause = started + sent / LOAD_RATE - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    rate.append(sent / (time.perf_counter() - started))


def _sleeper(plan: list[float], out: list[float]) -> None:
    """The floor: a bare thread sleeping until each planned time, recording how late it woke."""
    for due in sorted(plan):
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        out.append(time.time() - due)


def _recorded(settings: Settings, f: Fresh) -> Callable[[], list[float]]:
    if settings.kind == "redis":
        import redis

        client = redis.Redis.from_url(settings.url)
        key = lateness_key(f.namespace)
        return lambda: [float(v) for v in client.lrange(key, 0, -1)]
    path = Path(f.env["TASKQ_BENCH_SINK"])
    return lambda: [float(v) for v in path.read_text().split()] if path.exists() else []


def _once(
    settings: Settings, m: int, loaded: bool, rate: list[float]
) -> tuple[list[float], list[float]]:
    """One repetition: (the tasks' own lateness, the floor's lateness), in seconds; a loaded
    one appends the load's rate to ``rate``."""
    rng = random.Random()
    delays = [rng.randint(*DELAYS_MS) / 1000 for _ in range(m)]
    with fresh(settings) as f:
        worker = WorkerProcess(
            f.env, settings.scratch / f"{f.namespace}.log", ["--log-format", "json"]
        )
        stop = threading.Event()
        threads = []
        try:
            worker.wait_ready()
            late = f.app.tasks["late"]
            late.delay_by(0.001, time.time() + 0.001)  # warm-up, not counted
            start = time.time() + 0.05
            floor: list[float] = []
            plan = [start + i * SPACING + d for i, d in enumerate(delays)]
            threads.append(threading.Thread(target=_sleeper, args=(plan, floor)))
            if loaded:
                threads.append(threading.Thread(target=_stream, args=(f, stop, rate)))
            for t in threads:
                t.start()
            for i, delay in enumerate(delays):
                pause = start + i * SPACING - time.time()
                if pause > 0:
                    time.sleep(pause)
                late.delay_by(delay, time.time() + delay)
            read = _recorded(settings, f)
            deadline = time.monotonic() + max(DELAYS_MS) / 1000 + 10
            while len(values := read()) < m + 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join()
            worker.stop(now=True)
    if len(values) < m + 1:
        raise RuntimeError(f"only {len(values) - 1} of {m} delayed jobs ran in time")
    return values[1:], floor


def run(settings: Settings) -> list[Row]:
    """p50/p99/max lateness (median over repetitions) and the min over all, vs a bare sleeper."""
    if settings.kind == "memory":
        why = "memory:// lives in one process; a worker subprocess cannot see its jobs"
        return [skipped("lateness of delayed jobs", why)]
    m = settings.size(150, 30)
    rows = []
    rate: list[float] = []
    for loaded in (False, True):
        label = f"under {LOAD_RATE:,.0f} no-op jobs/s" if loaded else "idle worker"
        reps = [_once(settings, m, loaded, rate) for _ in range(settings.repeat)]
        for name, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
            value = median([percentile(r[0], q) for r in reps]) * 1000
            base = median([percentile(r[1], q) for r in reps]) * 1000
            rows.append(Row(f"lateness {name}, {label}", value, "ms", base, "time.sleep to due"))
        lowest = min(min(r[0]) for r in reps) * 1000
        rows.append(
            Row(
                f"lateness min (all reps), {label}",
                lowest,
                "ms",
                min(min(r[1]) for r in reps) * 1000,
                "time.sleep to due",
                "never early" if lowest >= 0 else "EARLY: a job started before its due time",
            )
        )
    rows[0].note = f"{m} jobs x{settings.repeat}, delays {DELAYS_MS[0]}-{DELAYS_MS[1]} ms, c=10"
    rows[4].note = f"load sent at {median(rate):,.0f} jobs/s, {LOAD_BATCH} per delay_many()"
    return rows
