"""A Redis that may evict keys can lose leases and jobs: the worker warns at start, and
``taskq worker --strict`` refuses to start."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from taskq.brokers import Retention
from taskq.brokers.memory import MemoryBroker
from taskq.brokers.redis import RedisBroker
from taskq.brokers.sqlite import SQLiteBroker
from tests.conftest import RedisServer
from tests.faults.helpers import processes, run_taskq, taskq_env, wait_for, write_tasks

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.timeout(60)]

TASKS = """
@app.task
def note(tag: str) -> None:
    record("ran.txt", tag)
"""


@pytest.fixture
def lru_redis() -> Iterator[RedisServer]:
    with RedisServer(extra=["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]) as server:
        yield server


def test_the_redis_broker_warns_about_an_evicting_policy(
    lru_redis: RedisServer, private_redis: RedisServer, tmp_path: Path
) -> None:
    evicting = RedisBroker(lru_redis.url, "ns", Retention())
    safe = RedisBroker(private_redis.url, "ns", Retention())
    try:
        [warning] = evicting.warnings()
        assert "allkeys-lru" in warning and "noeviction" in warning
        assert safe.warnings() == []
    finally:
        evicting.close()
        safe.close()
    assert MemoryBroker("ns", Retention()).warnings() == []
    sqlite = SQLiteBroker(f"sqlite:///{tmp_path / 'q.db'}", "ns", Retention())
    assert sqlite.warnings() == []
    sqlite.close()


def test_a_user_who_may_not_read_the_policy_is_warned_too(private_redis: RedisServer) -> None:
    admin = redis.Redis(port=private_redis.port)
    admin.acl_setuser(
        "worker",
        enabled=True,
        passwords=["+pw"],
        keys=["ns:*"],
        channels=["ns:*"],
        commands=["+@all", "-config", "-info"],
    )
    admin.close()
    url = f"redis://worker:pw@127.0.0.1:{private_redis.port}/0"
    broker = RedisBroker(url, "ns", Retention())
    try:
        [warning] = broker.warnings()
        assert "cannot read the maxmemory-policy" in warning and "pw@" not in warning
    finally:
        broker.close()


def test_strict_refuses_to_start_and_a_plain_worker_warns(
    lru_redis: RedisServer, namespace: str, tmp_path: Path
) -> None:
    write_tasks(tmp_path, namespace, TASKS)
    env = taskq_env(lru_redis.url)
    strict = run_taskq(["worker", "tasks:app", "--strict", "--burst"], tmp_path, env)
    assert strict.returncode == 2, strict.stderr
    assert strict.stderr.count("\n") == 1 and "--strict" in strict.stderr
    assert "allkeys-lru" in strict.stderr
    supervised = ["worker", "tasks:app", "--strict", "--processes", "2"]
    assert run_taskq(supervised, tmp_path, env).returncode == 2  # before any child starts

    args = ["worker", "tasks:app", "--log-format", "json"]
    with processes() as spawn:
        worker = spawn(args, tmp_path, env, tmp_path / "worker.log")
        warned = wait_for(
            lambda: [e for e in worker.events() if "allkeys-lru" in str(e.get("message"))],
            10,
            "the start-up warning",
        )
        assert warned[0]["level"] == "warning"
        worker.signal(signal.SIGTERM)
        assert worker.wait(10) == 0, worker.text()
