"""Shared fixtures: a real Redis and the programs tests need (skipped on a laptop without them,
never under CI=true), a fresh namespace per test, and apps on each broker."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import redis

from taskq import App

REDIS_URL = os.environ.get("TASKQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI") == "true"


def redis_or_skip(url: str = REDIS_URL) -> redis.Redis:
    """A client for the test Redis; skip the test without one, unless running under CI."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        if IN_CI:
            pytest.fail(f"CI=true but Redis at {url} does not answer: {exc}")
        pytest.skip(f"no Redis at {url}")
    return client


def tool_or_skip(name: str) -> str:
    """The path of a program a test needs; skip the test without it, unless running under CI."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"CI=true but {name} is not installed")
        pytest.skip(f"{name} is not installed")
    return path


def delete_namespace(client: redis.Redis, namespace: str) -> None:
    """Remove every key of one namespace (never FLUSHALL: the server is shared)."""
    keys = list(client.scan_iter(f"{namespace}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


@pytest.fixture
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_client(namespace: str) -> Iterator[redis.Redis]:
    client = redis_or_skip()
    yield client
    delete_namespace(client, namespace)
    client.close()


@pytest.fixture
def redis_app(redis_client: redis.Redis, namespace: str) -> Iterator[App]:
    """An App on the shared test Redis, in a namespace of its own."""
    app = App(REDIS_URL, namespace=namespace, env={})
    yield app
    app.close()


@pytest.fixture
def make_app(namespace: str, tmp_path: Path) -> Iterator[Callable[[str], App]]:
    """Build an App on ``"redis"``, ``"sqlite"`` or ``"memory"`` (cleaned up after the test)."""
    apps: list[App] = []
    clients: list[redis.Redis] = []

    def make(kind: str) -> App:
        if kind == "redis":
            clients.append(redis_or_skip())
            url = REDIS_URL
        elif kind == "sqlite":
            url = f"sqlite:///{tmp_path / 'taskq.db'}"
        else:
            url = "memory://"
        app = App(url, namespace=namespace, env={})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()
    for client in clients:
        delete_namespace(client, namespace)
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A private ``redis-server`` on a free loopback port, for tests that stop or restart it."""

    def __init__(self, appendonly: bool = False, extra: Sequence[str] = ()) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="taskq-redis-")
        self.appendonly = appendonly
        self.extra = list(extra)  # more redis-server flags, e.g. ["--appendfsync", "always"]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = tool_or_skip("redis-server")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir]
        args += ["--save", "", "--appendonly", "yes" if self.appendonly else "no", *self.extra]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def kill(self) -> None:
        """SIGKILL the server, as a crash or power loss would (only what it synced survives)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        """Start the server; it is stopped and its files removed on leaving (or if it fails)."""
        try:
            self.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.cleanup()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server
