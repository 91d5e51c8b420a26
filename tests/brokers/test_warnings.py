"""Contract: a broker on a healthy setup has nothing to warn about, and asking changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from ..conftest import redis_or_skip
from .brokerkit import item


def test_a_healthy_broker_has_no_warnings(broker: Any, backend: str) -> None:
    if backend == "redis":  # the one setting Redis is warned about: the test server's own
        client = redis_or_skip()
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy")
        client.close()
        if policy != "noeviction":
            pytest.skip(f"the test Redis has maxmemory-policy {policy}, not noeviction")
    assert broker.warnings() == []
    broker.enqueue([item("a")])
    assert broker.warnings() == []
    assert broker.counts("q").due == 1
