"""Jobs/s of ``taskq worker --burst`` subprocesses on no-op or CPU-bound jobs queued beforehand."""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import tasks
from .common import Fresh, Row, Settings, fresh, median, skipped
from .enqueue import PAYLOAD
from .floors import Floor
from .workers import WorkerProcess, interpreter_start

QUEUE = "default"
POLL = 0.002  # seconds between the observer's looks at the queue's counts

# (row label, worker flags, task); per-job log lines go to a file, as in real deployments
CONFIGS = (
    ("c=1, JSON info log to file", ["--concurrency", "1", "--log-format", "json"], "noop"),
    ("c=10 (default), JSON info log", ["--log-format", "json"], "noop"),
    ("c=10, --prefetch 0, JSON info log", ["--prefetch", "0", "--log-format", "json"], "noop"),
    ("c=50, JSON info log", ["--concurrency", "50", "--log-format", "json"], "noop"),
    (
        "c=10 (default), --log-level warning",
        ["--log-format", "json", "--log-level", "warning"],
        "noop",
    ),
    ("--processes 2, c=10, JSON info log", ["--processes", "2", "--log-format", "json"], "noop"),
    ("async def task, c=10, JSON info log", ["--log-format", "json"], "anoop"),
)
# (row label, worker flags) for CPU-bound `spin` jobs: one interpreter holds one GIL
CPU_CONFIGS = (
    ("1 process (c=10)", ["--log-format", "json"]),
    ("--processes 2", ["--processes", "2", "--log-format", "json"]),
)
CPU_TARGET = 1.7  # issue 6: --processes 2 completes >= 1.7x the jobs/s of one process


@dataclass
class Run:
    """One burst run: rates seen by the observer and in the log, and the times around them."""

    observed: float  # jobs/s from first claim to last ack as the broker's counts show (or logged)
    logged: float | None  # jobs/s between the first and the last "executed" log timestamps
    wall: float  # seconds from spawn to exit
    tail: float  # seconds from the last ack to the process exit


def _burst(
    settings: Settings,
    f: Fresh,
    n: int,
    flags: list[str],
    label: str,
    task: str = "noop",
    args: tuple[object, ...] = (PAYLOAD,),
    watch: bool = True,
) -> Run:
    """Run a burst worker over ``n`` jobs. ``watch``: poll the broker's counts every ``POLL``
    for the observed rate; without it, nothing runs beside the worker and only the log's rate
    is measured (the poll costs a few % of a core: enough to skew CPU-bound rows)."""
    if n:
        f.app.tasks[task].delay_many([(args, {})] * n)
    inspector = f.app.inspector
    log_path = settings.scratch / f"{f.namespace}.log"
    worker = WorkerProcess(f.env, log_path, ["--burst", *flags])
    first = last = None
    while n and watch:
        c = inspector.counts(QUEUE)
        now = time.perf_counter()
        if first is None and c.due < n:
            first = now
        if c.due + c.running == 0:
            last = now
            break
        if worker.proc.poll() is not None:
            raise RuntimeError(f"{label}: worker exited with work left: {worker.tail()}")
        time.sleep(POLL)
    exited = worker.wait()
    wall = exited - worker.started
    if not n:
        return Run(0.0, None, wall, 0.0)
    ends = [e["ts"] for e in worker.events() if e.get("event") == "executed"]
    span = max(ends) - min(ends) if ends else 0.0
    logged = (len(ends) - 1) / span if span > 0 else None
    if not watch:
        if len(ends) != n or logged is None:
            raise RuntimeError(f"{label}: {len(ends)} of {n} jobs logged as executed")
        return Run(logged, logged, wall, 0.0)
    if first is None or last is None:
        raise RuntimeError(f"{label}: the queue was never seen drained")
    return Run(n / (last - first), logged, wall, exited - last)


def spin_loop(n: int) -> float:
    """Calls/s of ``spin()`` in a plain loop in this process: one core's worth of the work."""
    started = time.perf_counter()
    for _ in range(n):
        tasks.spin(tasks.SPIN_ITERATIONS)
    return n / (time.perf_counter() - started)


def _cpu_rows(settings: Settings) -> list[Row]:
    """One worker process and ``--processes 2`` on ~1 ms ``spin`` jobs, next to a bare loop."""
    n = settings.size(2500, 400)
    bare: list[float] = []
    rates: dict[str, list[float]] = {label: [] for label, _ in CPU_CONFIGS}
    for _ in range(settings.repeat):
        bare.append(spin_loop(n))
        for label, flags in CPU_CONFIGS:
            with fresh(settings) as f:
                spin = (tasks.SPIN_ITERATIONS,)
                burst = _burst(settings, f, n, flags, label, "spin", spin, watch=False)
            rates[label].append(burst.observed)
    floor = median(bare)
    one, two = (median(rates[label]) for label, _ in CPU_CONFIGS)
    floor_name = "spin() loop, 1 process"
    return [
        Row(
            "CPU-bound ~1ms jobs/s, 1 process (c=10)",
            one,
            "jobs/s",
            floor,
            floor_name,
            f"x{n} jobs, rate from the log (no poll beside it); one spin() = "
            f"{1000 / floor:.2f} ms here",
        ),
        Row(
            "CPU-bound ~1ms jobs/s, --processes 2",
            two,
            "jobs/s",
            floor,
            floor_name,
            f"{two / one:.2f} of 1 process (target >= {CPU_TARGET})" if one else "",
        ),
    ]


def run(settings: Settings, floor: Floor) -> list[Row]:
    """Rows per no-op worker configuration (next to a ZPOPMIN-and-call loop), then CPU-bound."""
    if settings.kind == "memory":
        why = "memory:// lives in one process; a worker subprocess cannot see its jobs"
        labels = [f"no-op jobs/s, {label}" for label, _, _ in CONFIGS]
        labels += [f"CPU-bound ~1ms jobs/s, {label}" for label, _ in CPU_CONFIGS]
        return [skipped(label, why) for label in labels]
    n = settings.size(3000, 300)
    startup, bare = [], []
    for _ in range(settings.repeat):
        with fresh(settings) as f:
            startup.append(_burst(settings, f, 0, ["--log-format", "json"], "0 jobs").wall)
        bare.append(interpreter_start())
    rows = [
        Row(
            "worker start-up + exit, 0 jobs (burst)",
            median(startup),
            "s",
            median(bare),
            "python -c pass",
        )
    ]
    for label, flags, task in CONFIGS:
        runs, floors = [], []
        for _ in range(settings.repeat):
            with fresh(settings) as f:
                runs.append(_burst(settings, f, n, flags, label, task))
            floors.append(floor.pop_loop(n))
        logged = [r.logged for r in runs if r.logged is not None]
        wall = median([r.wall for r in runs]) - median(startup)
        tail = median([r.tail for r in runs])
        note = f"log ts {median(logged):,.0f}/s; " if logged else ""
        # a few thousand jobs at tens of thousands a second take less than the start-up's
        # spread: then the difference says nothing (it came out negative once)
        by_wall = f"{n / wall:,.0f}/s" if wall > 0.1 else "n/a (under start-up noise)"
        note += f"wall-minus-0-job {by_wall} (exit {tail:.2f}s after last ack)"
        rows.append(
            Row(
                f"no-op jobs/s x{n}, {label}",
                median([r.observed for r in runs]),
                "jobs/s",
                median(floors),
                floor.pop_name,
                note,
            )
        )
    return rows + _cpu_rows(settings)
