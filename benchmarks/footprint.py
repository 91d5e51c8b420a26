"""Storage per waiting job with a 20-byte argument: Redis MEMORY USAGE, SQLite pages, or RAM."""

from __future__ import annotations

import gc
import sqlite3
import tracemalloc

from taskq.brokers import Retention

from .common import Fresh, Row, Settings, fresh, median
from .enqueue import PAYLOAD
from .floors import Floor
from .workers import WorkerProcess

PEER_BYTES = 201  # the leanest peer's figure quoted in the issue: reference text, not measured
QUEUE = "default"


def _redis_bytes(settings: Settings, f: Fresh) -> tuple[int, int]:
    """(sum of MEMORY USAGE over the namespace's keys, INFO used_memory)."""
    import redis

    client = redis.Redis.from_url(settings.url)
    try:
        keys = list(client.scan_iter(match=f"{f.namespace}:*", count=1000))
        total = sum(int(client.memory_usage(k, samples=0) or 0) for k in keys)
        return total, int(client.info("memory")["used_memory"])
    finally:
        client.close()


def _sqlite_bytes(settings: Settings) -> int:
    conn = sqlite3.connect(settings.sqlite_path)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * conn.execute("PRAGMA page_size").fetchone()[0])
    finally:
        conn.close()


def _once(settings: Settings, n: int, delay: float = 0) -> tuple[float, float | None, int]:
    """(bytes per job, INFO used_memory delta per job or None, one job's body size), for jobs
    due now or ``delay`` seconds from now."""
    with fresh(settings) as f:
        noop = f.app.tasks["noop"]
        calls: list[tuple[tuple[str], dict[str, str]]] = [((PAYLOAD,), {})] * n
        info = None
        if settings.kind == "redis":
            keys0, info0 = _redis_bytes(settings, f)
            handles = noop.delay_many(calls, delay=delay)
            keys1, info1 = _redis_bytes(settings, f)
            used, info = keys1 - keys0, (info1 - info0) / n
        elif settings.kind == "sqlite":
            f.app.broker  # noqa: B018 - opens the file and creates the schema first
            before = _sqlite_bytes(settings)
            handles = noop.delay_many(calls, delay=delay)
            used = _sqlite_bytes(settings) - before
        else:
            f.app.broker  # noqa: B018
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            # the other handles are freed before measuring
            handles = noop.delay_many(calls, delay=delay)[:1]
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
        record = f.app.inspector.get(QUEUE, handles[0].id)
        body = len(record.body) if record is not None and record.body else 0
    return used / n, info, body


def _stored(settings: Settings, f: Fresh) -> int:
    if settings.kind == "redis":
        return _redis_bytes(settings, f)[0]
    return _sqlite_bytes(settings)


def _finished(settings: Settings, n: int) -> float:
    """Bytes still stored per job after a burst worker ran ``n`` no-op jobs (kept results)."""
    with fresh(settings) as f:
        f.app.broker  # noqa: B018 - opens the file and creates the schema first
        before = _stored(settings, f)
        f.app.tasks["noop"].delay_many([((PAYLOAD,), {})] * n)
        flags = ["--burst", "--log-format", "json", "--log-level", "warning"]
        WorkerProcess(f.env, settings.scratch / f"{f.namespace}.log", flags).wait()
        left = f.app.inspector.counts(QUEUE)
        if left.due or left.running:
            raise RuntimeError(f"jobs left after the burst worker: {left}")
        return (_stored(settings, f) - before) / n


def run(settings: Settings, floor: Floor) -> list[Row]:
    """Bytes per waiting job next to the bare storage of a 20-byte item, and the peer figure."""
    n = settings.size(10_000, 2_000)
    reps = [_once(settings, n) for _ in range(settings.repeat)]
    floors = [floor.bytes_per_item(n, len(PAYLOAD)) for _ in range(settings.repeat)]
    value = median([r[0] for r in reps])
    note = f"peer reference {PEER_BYTES} B (issue text): {value / PEER_BYTES:.2f}x"
    infos = [r[1] for r in reps if r[1] is not None]
    if infos:
        note += f"; INFO used_memory delta {median(infos):.0f} B/job"
    note += f"; body {reps[0][2]} B"
    what = {"redis": "MEMORY USAGE", "sqlite": "used pages", "memory": "tracemalloc"}[settings.kind]
    rows = [
        Row(
            f"bytes/waiting job, 20 B arg, {what} x{n}",
            value,
            "B/job",
            median(floors),
            floor.bytes_name,
            note,
        )
    ]
    if settings.kind == "redis":  # a delayed job waits in the waiting zset, not the due list
        delayed = median([_once(settings, n, delay=3600)[0] for _ in range(settings.repeat)])
        rows.append(
            Row(
                f"bytes/delayed job (due in 1 h), 20 B arg, {what} x{n}",
                delayed,
                "B/job",
                median(floors),
                floor.bytes_name,
            )
        )
    if settings.kind == "memory":
        return rows
    m = settings.size(2000, 300)
    kept = median([_finished(settings, m) for _ in range(settings.repeat)])
    cap = Retention().finished_max
    rows.append(
        Row(
            f"bytes/finished no-op job (finished record, no result), x{m}",
            kept,
            "B/job",
            note=f"bounded by count, not throughput: at most {cap:,} per queue "
            f"(~{kept * cap / 1e6:.1f} MB), whatever the job rate",
        )
    )
    return rows
