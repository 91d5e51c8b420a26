"""Fixtures that run the broker contract suite over the memory, SQLite and Redis brokers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from taskq.brokers import Retention
from taskq.brokers.memory import MemoryBroker
from taskq.brokers.sqlite import SQLiteBroker

from ..conftest import REDIS_URL, delete_namespace, redis_or_skip
from .brokerkit import MakeBroker

BACKENDS = ["memory", "sqlite", "redis"]


def _redis_broker_class() -> Any:
    try:
        from taskq.brokers.redis import RedisBroker
    except ImportError as exc:
        if exc.name != "taskq.brokers.redis":
            raise
        pytest.skip("taskq.brokers.redis is not written yet")
    return RedisBroker


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_broker(backend: str, tmp_path: Path) -> Iterator[MakeBroker]:
    """A factory of brokers on one backend (one SQLite file, one Redis server) for this test.

    Each broker gets a namespace of its own unless one is given.
    """
    made: list[Any] = []
    namespaces: list[str] = []
    redis_class = _redis_broker_class() if backend == "redis" else None
    client = redis_or_skip() if backend == "redis" else None

    def make(namespace: str | None = None, retention: Retention | None = None) -> Any:
        namespace = namespace or f"test-{uuid4().hex[:12]}"
        retention = retention or Retention()
        if backend == "memory":
            broker: Any = MemoryBroker(namespace, retention)
        elif backend == "sqlite":
            broker = SQLiteBroker(f"sqlite:///{tmp_path / 'taskq.db'}", namespace, retention)
        else:
            assert redis_class is not None
            broker = redis_class(REDIS_URL, namespace, retention)
        made.append(broker)
        namespaces.append(namespace)
        return broker

    yield make
    for broker in made:
        broker.close()
    if client is not None:
        for namespace in namespaces:
            delete_namespace(client, namespace)
        client.close()


@pytest.fixture
def broker(make_broker: MakeBroker) -> Any:
    """A broker (and inspector) in a namespace of its own."""
    return make_broker()
