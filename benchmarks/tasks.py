"""The benchmark's App and tasks, configured from the environment so each run is isolated."""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from taskq import App

DEFAULT_URL = "redis://127.0.0.1:6379/0"
URL_ENV = "TASKQ_BENCH_URL"  # broker URL of the run
NAMESPACE_ENV = "TASKQ_BENCH_NAMESPACE"  # a fresh namespace per scenario repetition
SINK_ENV = "TASKQ_BENCH_SINK"  # where `late` records: a redis:// URL, or a file path
# loop steps in one ``spin`` call: about 1 ms of pure-Python work (1.0-1.2 ms measured with
# CPython 3.11 on the 2-core machine the benchmarks were written on, more under load); runs print it
SPIN_ITERATIONS = 22_000


def noop(payload: str = "") -> None:
    """Do nothing with ``payload``: what is left is the framework's own cost per job."""


async def anoop(payload: str = "") -> None:
    """Do nothing, as an ``async def`` task: it runs on the worker's event loop."""


def sleep(seconds: float) -> None:
    """Hold a worker slot (and the job's lease) for ``seconds``."""
    time.sleep(seconds)


def spin(iterations: int = SPIN_ITERATIONS) -> int:
    """Deterministic pure-Python work (a sum over ``iterations`` steps) that holds the GIL."""
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def late(due: float) -> None:
    """Record how late this job started: ``time.time()`` now minus the due time it was given."""
    lateness = time.time() - due
    _sink()(f"{lateness:.6f}")


def lateness_key(namespace: str) -> str:
    """The Redis list the ``late`` task appends to, inside the benchmark's namespace."""
    return f"{namespace}:bench:lateness"


@functools.lru_cache(maxsize=1)
def _sink() -> Any:
    target = os.environ.get(SINK_ENV, "")
    namespace = os.environ.get(NAMESPACE_ENV, "taskq-bench")
    if target.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(target)
        key = lateness_key(namespace)
        return lambda line: client.rpush(key, line)
    if not target:
        raise RuntimeError(f"{SINK_ENV} is not set: nowhere to record lateness")

    def append(line: str) -> None:
        with open(target, "a", encoding="ascii") as out:  # one small O_APPEND write per line
            out.write(line + "\n")

    return append


def make_app(url: str, namespace: str) -> App:
    """An App with the benchmark's tasks (``noop``, ``anoop``, ``sleep``, ``spin``, ``late``)."""
    bench = App(url, namespace=namespace)
    bench.task(name="noop")(noop)
    bench.task(name="anoop")(anoop)
    bench.task(name="sleep")(sleep)
    bench.task(name="spin")(spin)
    bench.task(name="late")(late)
    return bench


app = make_app(os.environ.get(URL_ENV, DEFAULT_URL), os.environ.get(NAMESPACE_ENV, "taskq-bench"))
