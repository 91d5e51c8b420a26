"""Open a broker from its URL; each broker module is imported only when its scheme is used."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ConfigError
from .base import Broker

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Retention:
    """How much a broker keeps of ended jobs: dead jobs and finished records, by count and age.

    A finished record (a succeeded or cancelled job's state, time, attempts and worker, about
    220 bytes in Redis) is what lets ``status()`` and ``result()`` answer for a job that kept no
    value; the count bound keeps memory flat whatever the throughput.
    """

    dead_max: int = 10_000
    dead_ttl_ms: int = 7 * DAY_MS
    finished_max: int = 10_000  # per queue
    finished_ttl_ms: int = DAY_MS


def open_broker(
    url: str,
    namespace: str,
    retention: Retention | None = None,
    clock: Callable[[], float] = time.time,
) -> Broker:
    """The broker for ``url``: ``redis://``/``rediss://``/``unix://``, ``sqlite://``, ``memory://``.

    ``clock`` is the local clock the embedded brokers decide due times and leases with; Redis
    always uses its own server clock.
    """
    retention = retention or Retention()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisBroker

        return RedisBroker(url, namespace, retention)
    if scheme == "sqlite":
        from .sqlite import SQLiteBroker

        return SQLiteBroker(url, namespace, retention, clock)
    if scheme == "memory":
        from .memory import MemoryBroker

        return MemoryBroker(namespace, retention, clock)
    raise ConfigError(
        f"unsupported broker URL scheme {scheme or url!r}: use redis://, rediss://, unix://, "
        "sqlite:/// or memory://"
    )
