"""Hostile bytes written straight into Redis: each goes to the dead-letter store with a reason,
no code in them ever runs (pickle payloads included), and the worker goes on."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
import redis

from taskq import App
from taskq.brokers.redis_keys import NamespaceKeys
from taskq.job import FORMAT_VERSION, Job
from taskq.worker import Worker, WorkerOptions

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.timeout(60)]


class Exploit:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def envelope(task: str, *fields: object) -> bytes:
    now = int(time.time() * 1000)
    return Job("x", task, (), {}, "default", 0, now).encode() if not fields else _pack(fields)


def _pack(fields: tuple[object, ...]) -> bytes:
    return msgpack.packb(list(fields), use_bin_type=True)  # type: ignore[no-any-return]


def hostile(marker: Path) -> dict[str, tuple[bytes, str]]:
    """Job id -> (raw body, the dead-letter reason expected)."""
    good = envelope("known")
    return {
        "truncated": (good[: len(good) // 2], "undecodable"),
        "pickle-0": (pickle.dumps(Exploit(marker), protocol=0), "undecodable"),
        "pickle-5": (pickle.dumps(Exploit(marker), protocol=5), "undecodable"),
        "pickle-in-ext": (
            _pack((msgpack.ExtType(99, pickle.dumps(Exploit(marker))),)),
            "undecodable",
        ),
        "huge-10mb": (msgpack.packb(b"\0" * 10_000_000), "undecodable"),
        "huge-random": (os.urandom(10_000_000), "undecodable"),
        "array-bomb": (b"\xdd\xff\xff\xff\xff", "undecodable"),
        "newer-format": (
            _pack((FORMAT_VERSION + 1, "known", [], {}, 0, 0, {})),
            "undecodable",
        ),
        "wrong-shape": (_pack((FORMAT_VERSION, 42, "args", None)), "undecodable"),
        "os-system": (
            _pack((FORMAT_VERSION, "os.system", [f"touch {marker}"], {}, 0, 0, {})),
            "unknown-task",
        ),
        "builtins-eval": (
            _pack((FORMAT_VERSION, "eval", [f"open({str(marker)!r}, 'w')"], {}, 0, 0, {})),
            "unknown-task",
        ),
    }


def test_hostile_payloads_are_dead_with_a_reason_and_never_run(
    redis_app: App, redis_client: redis.Redis, namespace: str, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    ran: list[int] = []

    @redis_app.task
    def known(n: int = 0) -> int:
        ran.append(n)
        return n

    keys = NamespaceKeys(namespace).queue("default")
    payloads = hostile(marker)
    for job_id, (raw, _) in payloads.items():
        redis_client.hset(keys.jobs, job_id, raw)
        redis_client.zadd(keys.waiting, {job_id: 0})  # due since 1970: claimed first
    redis_client.sadd(NamespaceKeys(namespace).queues, "default")
    after = known.delay(7)

    worker = Worker(redis_app, WorkerOptions(poll_interval=0.05, lease=5.0, burst=True))
    asyncio.run(asyncio.wait_for(worker.run(), 30))

    assert after.result(timeout=1) == 7 and ran == [7]  # the worker went on
    assert not marker.exists(), "a payload ran code"
    dead = {r.job_id: r for r in redis_app.inspector.dead("default", limit=100)}
    for job_id, (raw, reason) in payloads.items():
        record = dead.get(job_id)
        assert record is not None, f"{job_id} is not in the dead-letter store"
        assert record.failure is not None and record.failure.reason == reason, job_id
        assert record.failure.message, job_id
        assert record.body == raw, f"{job_id}: the raw bytes were not kept"
        print(f"{job_id:>14}: {reason}: {record.failure.message[:90]}")
    counts = redis_app.inspector.counts("default")
    assert (counts.due, counts.scheduled, counts.running, counts.dead) == (0, 0, 0, len(payloads))


def test_the_pickle_payload_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    """The control: the marker proves something only if unpickling would create it."""
    marker = tmp_path / "control"
    done = subprocess.run(
        [sys.executable, "-c", "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"],
        input=pickle.dumps(Exploit(marker)),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert marker.exists()
