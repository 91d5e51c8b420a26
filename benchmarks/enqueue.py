"""Enqueue rates: ``task.delay`` one call per job, and ``task.delay_many`` in one batch."""

from __future__ import annotations

import time

from .common import Row, Settings, fresh, median
from .floors import Floor

PAYLOAD = "x" * 20  # the 20-byte argument every benchmark job carries


def _one_by_one(settings: Settings, n: int) -> float:
    with fresh(settings) as f:
        noop = f.app.tasks["noop"]
        noop.delay(PAYLOAD)  # warm-up: connection, script load, queue registration
        started = time.perf_counter()
        for _ in range(n):
            noop.delay(PAYLOAD)
        return n / (time.perf_counter() - started)


def _bulk(settings: Settings, n: int) -> float:
    with fresh(settings) as f:
        noop = f.app.tasks["noop"]
        noop.delay(PAYLOAD)
        calls: list[tuple[tuple[str], dict[str, str]]] = [((PAYLOAD,), {})] * n
        started = time.perf_counter()
        noop.delay_many(calls)
        return n / (time.perf_counter() - started)


def run(settings: Settings, floor: Floor) -> list[Row]:
    """Each figure next to the raw client doing the same number of writes, in the same run."""
    n_one = settings.size(3000, 300)
    n_bulk = settings.size(20000, 2000)
    floor.add_one_by_one(100)  # warm-up
    one, one_floor, one_piped, bulk, bulk_floor = [], [], [], [], []
    for _ in range(settings.repeat):
        one.append(_one_by_one(settings, n_one))
        one_floor.append(floor.add_one_by_one(n_one))
        one_piped.append(floor.add_bulk(n_one))
        bulk.append(_bulk(settings, n_bulk))
        bulk_floor.append(floor.add_bulk(n_bulk))
    piped = median(one_piped)
    return [
        Row(
            f"enqueue 1 by 1: task.delay() x{n_one}",
            median(one),
            "jobs/s",
            median(one_floor),
            floor.one_by_one_name,
            f"{median(one) / piped:.2f}x of {floor.bulk_name} ({piped:,.0f}/s)",
        ),
        Row(
            f"enqueue bulk: task.delay_many() x{n_bulk}",
            median(bulk),
            "jobs/s",
            median(bulk_floor),
            floor.bulk_name,
        ),
    ]
