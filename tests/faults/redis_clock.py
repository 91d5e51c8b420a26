"""A Redis broker on a clock the test sets, so that time passes for it as for the embedded brokers.

Redis's clock cannot be set, and taskq reads it in two places only: ``redis.call('TIME')`` in the
scripts' shared helpers, and the ``TIME`` replies the inspection reads. Both are given the test's
clock here; every other line of every script runs as shipped. The scripts read it from the key
``<namespace>:clock`` (in µs), which the broker writes whenever the clock is set.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from taskq.brokers import Retention
from taskq.brokers.redis import RedisBroker
from taskq.brokers.redis_scripts import _NAMES, Script, Scripts, _source

SERVER_TIME = "redis.call('TIME')"
# The test's clock, from the key beside the script's first key (every script's first key is one
# of a queue's, "<namespace>:{<queue>}:<name>"): the same text for every namespace, so the script
# cache of the shared server holds one copy of each script, not one per test. The key is not
# among the script's KEYS, which a standalone Redis allows (a Cluster would not).
SET_TIME = """
local function set_time()
  local clock = string.match(KEYS[1], '^(.-):{') .. ':clock'
  local us = tonumber(redis.call('GET', clock) or error('the test clock is not set: ' .. clock))
  return {math.floor(us / 1000000), us % 1000000}
end
"""


def scripts_on_set_time(client: redis.Redis) -> Scripts:
    """taskq's scripts with the server's ``TIME`` replaced by the test's clock."""
    lib = _source("_lib")
    assert lib.count(SERVER_TIME) == 2, "taskq reads the Redis clock somewhere new: fake it too"
    for name in _NAMES:
        assert "'TIME'" not in _source(name), f"{name}.lua reads the Redis clock itself"
    lib = SET_TIME + lib.replace(SERVER_TIME, "set_time()")
    return Scripts(**{n: Script(client.register_script(f"{lib}\n{_source(n)}")) for n in _NAMES})


class Clock:
    """Whole milliseconds since the epoch that move only when the test sets them."""

    def __init__(self, ms: int) -> None:
        self.ms = ms
        self.followers: list[Callable[[int], None]] = []

    def __call__(self) -> float:
        # the embedded brokers read seconds and round down to the ms: half a ms more keeps a
        # float's rounding from reading one ms early
        return (self.ms + 0.5) / 1000

    def set(self, ms: int) -> None:
        self.ms = ms
        for follow in self.followers:
            follow(ms)


class RedisOnClock(RedisBroker):
    """A :class:`RedisBroker` whose scripts and inspection read ``clock`` instead of ``TIME``."""

    def __init__(self, url: str, namespace: str, retention: Retention, clock: Clock) -> None:
        super().__init__(url, namespace, retention)
        self.scripts = scripts_on_set_time(self._shared)
        self._clock = clock
        clock.followers.append(self._write_clock)
        self._write_clock(clock.ms)

    def _write_clock(self, ms: int) -> None:
        self.client.set(f"{self.namespace}:clock", ms * 1000)

    def _time(self, _: Any) -> tuple[int, int]:
        return divmod(self._clock.ms * 1000, 1_000_000)

    @property
    def client(self) -> redis.Redis:
        client = super().client
        client.set_response_callback("TIME", self._time)  # pipelines take the client's callbacks
        return client
