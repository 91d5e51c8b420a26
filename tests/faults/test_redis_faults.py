"""A Redis of the test's own that is stopped and restarted: an unreachable broker at enqueue,
and a worker that rides out a Redis restart."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from taskq import App, BrokerUnavailable
from taskq.brokers.redis_keys import NamespaceKeys
from tests.conftest import RedisServer
from tests.faults.helpers import lines, processes, taskq_env, wait_for, write_tasks

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.timeout(60)]

TASKS = """
@app.task
def note(tag: str) -> None:
    record("ran.txt", tag)
"""


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    """A private redis-server with an append-only file, so data outlives a restart."""
    with RedisServer(appendonly=True) as server:
        yield server


def test_enqueue_to_an_unreachable_broker_fails_after_bounded_retries(
    persistent_redis: RedisServer, namespace: str, tmp_path: Path
) -> None:
    port = persistent_redis.port
    persistent_redis.stop()
    url = f"redis://taskq:s3cret-pw@127.0.0.1:{port}/0"
    app = App(url, namespace=namespace, env={})

    @app.task
    def note(tag: str) -> None: ...

    write_tasks(tmp_path, namespace, TASKS)
    # the command line too, at the same time: one line naming the URL, password masked
    cli = subprocess.Popen(
        [sys.executable, "-m", "taskq", "enqueue", "tasks:app", "note", '"lost?"'],
        cwd=tmp_path,
        env=taskq_env(url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable) as unavailable:
            note.delay("lost?")
        took = time.monotonic() - started
        print(f"BrokerUnavailable after {took:.2f}s: {unavailable.value}")
        assert took < 30
        message = str(unavailable.value)
        assert f"redis://taskq:***@127.0.0.1:{port}/0" in message
        assert "s3cret-pw" not in message
        assert "s3cret-pw" not in repr(app)
        app.close()

        out, err = cli.communicate(timeout=30)
        assert cli.returncode == 1, err  # a runtime error, not a usage error
        assert out == ""
        assert err.count("\n") == 1 and err.startswith("taskq: error: ")
        assert f"redis://taskq:***@127.0.0.1:{port}/0" in err and "s3cret-pw" not in err
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()

    persistent_redis.start()  # the same port and data directory: nothing was written
    client = redis.Redis(port=port)
    try:
        assert list(client.scan_iter(f"{namespace}:*")) == []
    finally:
        client.close()


def test_a_worker_rides_out_a_redis_restart(
    persistent_redis: RedisServer, namespace: str, tmp_path: Path
) -> None:
    write_tasks(tmp_path, namespace, TASKS)
    app = App(persistent_redis.url, namespace=namespace, env={})

    @app.task
    def note(tag: str) -> None: ...

    client = redis.Redis(port=persistent_redis.port)
    wake = NamespaceKeys(namespace).queue("default").wake

    def subscribed() -> bool:
        return bool(client.pubsub_numsub(wake)[0][1])

    # a poll interval this long means only a wake-up can start a job quickly: after the
    # restart, that proves the worker resubscribed as well as reconnected
    args = ["worker", "tasks:app", "--log-format", "json", "--poll-interval", "5s"]
    with processes() as spawn:
        worker = spawn(args, tmp_path, taskq_env(persistent_redis.url), tmp_path / "worker.log")
        try:
            wait_for(subscribed, 10, "the worker to subscribe")
            note.delay("before").result(timeout=5)
            later = note.delay_by(2.0, "scheduled-across-the-restart")

            persistent_redis.stop()
            # a claim fails only after the client's own bounded retries (about 5 s)
            wait_for(lambda: "broker unreachable" in worker.text(), 20, "the worker to notice")
            persistent_redis.start()
            wait_for(lambda: _safe(subscribed), 15, "the worker to subscribe again")

            sent = time.monotonic()
            after = note.delay("after")
            after.result(timeout=10)
            print(f"first job after the restart started within {time.monotonic() - sent:.2f}s")
            assert time.monotonic() - sent < 4  # a wake-up, not the 5 s poll
            later.result(timeout=10)

            assert worker.alive(), worker.text()
            assert "broker reachable again" in worker.text()
            ran = lines(tmp_path / "ran.txt")
            assert sorted(ran) == ["after", "before", "scheduled-across-the-restart"]
            worker.signal(signal.SIGTERM)
            assert worker.wait(10) == 0, worker.text()
        finally:
            client.close()
            app.close()


def _safe(check: object) -> bool:
    """``check()``, with a connection error (Redis still starting) as a plain ``False``."""
    try:
        return bool(check())  # type: ignore[operator]
    except redis.ConnectionError:
        return False
