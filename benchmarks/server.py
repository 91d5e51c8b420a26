"""Redis CPU per job (INFO cpu): what one Redis core spends on a job, whatever the workers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .common import Row, Settings, fresh, median, skipped
from .enqueue import PAYLOAD
from .floors import noop
from .workers import WorkerProcess

WORKER_FLAGS = ["--burst", "--log-format", "json", "--log-level", "warning"]


def _cpu_seconds(client: Any) -> float:
    """The Redis server's user + system CPU seconds so far."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _per_item(client: Any, n: int, work: Callable[[], object]) -> float:
    """Redis CPU µs per item while ``work`` handles ``n`` items."""
    before = _cpu_seconds(client)
    work()
    return (_cpu_seconds(client) - before) / n * 1e6


def _taskq(settings: Settings, client: Any, n: int) -> tuple[float, float]:
    """(µs per job of ``delay_many``, µs per job of a burst worker running them)."""
    with fresh(settings) as f:
        noop_task = f.app.tasks["noop"]
        noop_task.delay(PAYLOAD)  # scripts loaded, queue registered: not counted
        calls: list[tuple[tuple[str], dict[str, str]]] = [((PAYLOAD,), {})] * n
        enqueue = _per_item(client, n, lambda: noop_task.delay_many(calls))
        log = settings.scratch / f"{f.namespace}.log"
        run = _per_item(client, n + 1, lambda: WorkerProcess(f.env, log, WORKER_FLAGS).wait())
    return enqueue, run


def _floor(settings: Settings, client: Any, n: int) -> tuple[float, float]:
    """(µs per item of a pipelined ZADD, µs per item of a ZPOPMIN loop calling a function)."""
    key = f"{settings.run_id}-floor:cpu"

    def add() -> None:
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.zadd(key, {f"job-{i}": i})
        pipe.execute()

    def pop() -> None:
        while client.zpopmin(key):
            noop()

    try:
        return _per_item(client, n, add), _per_item(client, n, pop)
    finally:
        client.unlink(key)


def run(settings: Settings) -> list[Row]:
    """Redis CPU per job for bulk enqueue and for a worker's claims, acks and upkeep."""
    labels = ("Redis CPU/job: enqueue, delay_many()", "Redis CPU/job: worker c=10 (claim+ack)")
    if settings.kind != "redis":
        return [skipped(label, "Redis only: read from the server's INFO cpu") for label in labels]
    import redis

    n = settings.size(5000, 1000)
    client = redis.Redis.from_url(settings.url)
    try:
        ours = [_taskq(settings, client, n) for _ in range(settings.repeat)]
        floors = [_floor(settings, client, n) for _ in range(settings.repeat)]
    finally:
        client.close()
    run_us = median([r[1] for r in ours])
    return [
        Row(
            f"{labels[0]} x{n}",
            median([r[0] for r in ours]),
            "µs",
            median([f[0] for f in floors]),
            "raw pipelined ZADD",
        ),
        Row(
            f"{labels[1]} x{n}",
            run_us,
            "µs",
            median([f[1] for f in floors]),
            "raw ZPOPMIN loop",
            f"one Redis core runs out at ~{1e6 / run_us:,.0f} jobs/s, whatever the number of "
            "workers; includes start-up, heartbeats and the wake-up channel",
        ),
    ]
