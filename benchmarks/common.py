"""Shared pieces: the run's settings, result rows, fresh namespaces and their clean-up."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import statistics
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from taskq import App

from . import tasks

ROOT = Path(__file__).resolve().parent.parent  # the directory `benchmarks` is imported from


def broker_kind(url: str) -> str:
    """``redis``, ``sqlite`` or ``memory``, from the URL's scheme."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        return "redis"
    if scheme in ("sqlite", "memory"):
        return scheme
    raise SystemExit(f"benchmarks: unsupported URL {url!r} (redis://, sqlite:///path, memory://)")


@dataclass
class Settings:
    """What the command line asked for, plus the run's scratch directory."""

    url: str
    quick: bool
    repeat: int
    scratch: Path
    run_id: str = field(default_factory=lambda: f"bench-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    namespaces: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return broker_kind(self.url)

    def size(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    @property
    def sqlite_path(self) -> str:
        return self.url.split("://", 1)[1].partition("?")[0][1:]


@dataclass
class Row:
    """One line of the table: a figure, the floor it is compared with, and their ratio."""

    scenario: str
    value: float | None
    unit: str
    floor: float | None = None
    floor_name: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.floor:
            return None
        return self.value / self.floor


def skipped(scenario: str, why: str) -> Row:
    """A row saying a scenario did not run, and why."""
    return Row(scenario, None, "", note=f"skipped: {why}")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def repeat(settings: Settings, measure: Callable[[], float]) -> float:
    """The median of ``settings.repeat`` measurements."""
    return median([measure() for _ in range(settings.repeat)])


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Fresh:
    """A namespace of its own for one repetition: its App and the environment for workers."""

    namespace: str
    app: App
    env: dict[str, str]


@contextmanager
def fresh(settings: Settings) -> Iterator[Fresh]:
    """A new namespace (and App on it), whose keys or rows are deleted on the way out."""
    namespace = f"{settings.run_id}-{len(settings.namespaces)}"
    settings.namespaces.append(namespace)
    app = tasks.make_app(settings.url, namespace)
    env = dict(os.environ)
    env[tasks.URL_ENV] = settings.url
    env[tasks.NAMESPACE_ENV] = namespace
    env[tasks.SINK_ENV] = (
        settings.url if settings.kind == "redis" else str(settings.scratch / f"{namespace}.late")
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    try:
        yield Fresh(namespace, app, env)
    finally:
        app.close()
        delete_namespace(settings, namespace)


def delete_namespace(settings: Settings, namespace: str) -> None:
    """Remove everything a namespace left in the broker (SCAN + UNLINK, or DELETE rows)."""
    if settings.kind == "redis":
        import redis

        client = redis.Redis.from_url(settings.url)
        try:
            batch = list(client.scan_iter(match=f"{namespace}:*", count=1000))
            for start in range(0, len(batch), 500):
                client.unlink(*batch[start : start + 500])
        finally:
            client.close()
    elif settings.kind == "sqlite" and os.path.exists(settings.sqlite_path):
        conn = sqlite3.connect(settings.sqlite_path, timeout=30)
        try:
            for table in ("taskq_jobs", "taskq_queues", "taskq_results", "taskq_workers"):
                # a table is missing when the broker never opened the file
                with contextlib.suppress(sqlite3.OperationalError):
                    conn.execute(f"DELETE FROM {table} WHERE namespace = ?", (namespace,))
            conn.commit()
        finally:
            conn.close()


def make_scratch() -> Path:
    """A temporary directory for log files and floor databases."""
    return Path(tempfile.mkdtemp(prefix="taskq-bench-"))
