"""Open a broker from its URL; each broker module is imported only when its scheme is used."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .base import Broker

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Retention:
    """How much a broker keeps of finished jobs: dead jobs by count and age."""

    dead_max: int = 10_000
    dead_ttl_ms: int = 7 * DAY_MS


def open_broker(url: str, namespace: str, retention: Retention | None = None) -> Broker:
    """The broker for ``url``: ``redis://``/``rediss://``/``unix://``, ``sqlite://``, ``memory://``."""
    retention = retention or Retention()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisBroker

        return RedisBroker(url, namespace, retention)
    if scheme == "sqlite":
        from .sqlite import SQLiteBroker

        return SQLiteBroker(url, namespace, retention)
    if scheme == "memory":
        from .memory import MemoryBroker

        return MemoryBroker(namespace, retention)
    raise ConfigError(
        f"unsupported broker URL scheme {scheme or url!r}: use redis://, rediss://, unix://, "
        "sqlite:/// or memory://"
    )
