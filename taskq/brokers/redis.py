"""The Redis broker: every state change is one Lua script on one queue's keys (one Cluster slot)."""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import msgpack
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.utils import HIREDIS_AVAILABLE

from ..config import mask_url
from ..errors import BrokerError, BrokerUnavailable, ConfigError
from . import Retention
from .base import Ack, Bury, ClaimBatch, Claimed, EnqueueItem, Lease, RetryLater
from .redis_inspect import RedisInspection
from .redis_keys import NamespaceKeys, QueueKeys
from .redis_resp import CommandPacker
from .redis_scripts import Scripts
from .redis_watch import Watcher

log = logging.getLogger("taskq.broker")

T = TypeVar("T")
RECOVER_PER_CLAIM = 100  # leases recovered per claim call; bounds the script's run time
ARGS_PER_CALL = 2000  # items per script call, so one huge batch never blocks Redis for long
_CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError)


def connect(url: str) -> redis.Redis:
    """A client with bounded, backed-off retries; ``rediss://`` verifies certificates by default."""
    try:
        client = redis.Redis.from_url(
            url,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 8),
            retry_on_error=list(_CONNECTION_ERRORS),
            socket_connect_timeout=5.0,
            socket_timeout=15.0,
            socket_keepalive=True,
            health_check_interval=30,
            # hiredis, where installed, packs in C; otherwise taskq's packer beats redis-py's
            command_packer=None if HIREDIS_AVAILABLE else CommandPacker(),
        )
    except ValueError as exc:
        raise ConfigError(f"bad Redis URL {mask_url(url)}: {exc}") from None
    kwargs = client.connection_pool.connection_kwargs
    # absent means redis-py's default, "required"; the old test read absent as "none" and warned
    # that verification was off when it was on (tests/faults/test_security.py)
    if url.startswith("rediss://") and kwargs.get("ssl_cert_reqs", "required") in ("none", 0):
        log.warning(
            "TLS certificate verification is OFF for %s (ssl_cert_reqs=none)", mask_url(url)
        )
    return client


def _digits(reply: bytes) -> list[int]:
    """A script's per-item answers, sent as one string of digits."""
    return [digit - 48 for digit in reply]  # b"0" is 48


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), ARGS_PER_CALL):
        yield items[start : start + ARGS_PER_CALL]


class _Errors:
    """Turns redis-py's errors into taskq's, naming the server (a class, not a generator: it
    wraps every call, a single ``delay()`` included)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, _: Any) -> None:
        if exc is None or not isinstance(exc, redis.RedisError):
            return
        if isinstance(exc, _CONNECTION_ERRORS):
            raise BrokerUnavailable(f"cannot reach Redis at {self.url}: {exc}") from exc
        raise BrokerError(f"Redis at {self.url} refused: {exc}") from exc


class RedisBroker(RedisInspection):
    """A broker on one Redis server (or one Cluster slot per queue)."""

    def __init__(self, url: str, namespace: str, retention: Retention | None = None) -> None:
        self.url = mask_url(url)
        self._translate = _Errors(self.url)
        self._raw_url = url
        self.namespace = namespace
        self.retention = retention or Retention()
        self._shared = connect(url)  # its pool holds the connections of every thread
        self._local = threading.local()
        # weak: a thread that ends drops its client, which gives its connection back to the pool
        self._clients: weakref.WeakSet[redis.Redis] = weakref.WeakSet()
        self.keys = NamespaceKeys(namespace)
        self.scripts = Scripts.register(self._shared)
        self._known_queues: set[str] = set()
        self._lock = threading.Lock()

    @property
    def client(self) -> redis.Redis:
        """This thread's client, on a connection of its own taken from the pool once.

        A pooled client checks a connection out and back in for every command, and polls its
        socket each time (three system calls, plus bookkeeping): about 40 µs of CPU per command
        here, as much as the command itself. A thread keeps its connection instead; a process
        forked after using it makes its own.
        """
        local = self._local
        pid = os.getpid()
        if getattr(local, "pid", None) != pid:
            pool = self._shared.connection_pool
            local.client = redis.Redis(connection_pool=pool, single_connection_client=True)
            local.pid = pid
            with self._lock:
                self._clients.add(local.client)
        client: redis.Redis = local.client
        return client

    def _errors(self) -> _Errors:
        return self._translate

    # -- producer ------------------------------------------------------------------------------

    def enqueue(self, items: Sequence[EnqueueItem]) -> list[bool]:
        if len(items) == 1:
            return [self._enqueue_one(items[0])]
        written: dict[int, bool] = {}
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, item in enumerate(items):
            by_queue[item.queue].append(index)
        with self._errors():
            self._remember_queues(by_queue)
            for queue, indexes in by_queue.items():
                k = self.keys.queue(queue)
                keys = k.enqueue_keys
                for chunk in _chunks(indexes):
                    args: list[Any] = [k.wake]
                    for i in chunk:
                        item = items[i]
                        due_at = "" if item.due_at_ms is None else item.due_at_ms
                        args += [item.job_id, item.body, item.delay_ms, due_at]
                    flags = _digits(self.scripts.enqueue(keys, args, client=self.client))
                    written.update(zip(chunk, (bool(f) for f in flags), strict=True))
        return [written[i] for i in range(len(items))]

    def _enqueue_one(self, item: EnqueueItem) -> bool:
        """One job, the usual ``delay()``: the batch's script with none of its bookkeeping
        (which cost a fifth of a ``delay()`` call's time)."""
        k = self.keys.queue(item.queue)
        due_at = "" if item.due_at_ms is None else item.due_at_ms
        args = (k.wake, item.job_id, item.body, item.delay_ms, due_at)
        with self._errors():
            if item.queue not in self._known_queues:
                self._remember_queues([item.queue])
            reply: bytes = self.scripts.enqueue(k.enqueue_keys, args, client=self.client)
        return reply == b"1"

    def _remember_queues(self, queues: Iterable[str]) -> None:
        new = [q for q in queues if q not in self._known_queues]
        if new:
            self.client.sadd(self.keys.queues, *new)
            with self._lock:
                self._known_queues.update(new)

    # -- worker --------------------------------------------------------------------------------

    def claim(
        self, queues: Sequence[str], limit: int, lease_ms: int, worker: str, ahead_ms: float = 0
    ) -> ClaimBatch:
        jobs: list[Claimed] = []
        next_due: float | None = None
        with self._errors():
            for queue in queues:
                k = self.keys.queue(queue)
                keys = [k.waiting, k.running, k.jobs, k.attempts, k.crashes, k.tokens, k.owners]
                want = limit - len(jobs)
                packed = self.scripts.claim(
                    [*keys, k.seq, k.due, k.due_at],
                    [max(want, 0), lease_ms, worker, RECOVER_PER_CLAIM, int(ahead_ms * 1000)],
                    client=self.client,
                )
                reply = msgpack.unpackb(packed, raw=True)  # Lua strings come as bytes
                for i in range(1, len(reply), 6):
                    job_id, body, token, attempt, crashes, wait_us = reply[i : i + 6]
                    lease = Lease(queue, job_id.decode(), int(token))
                    jobs.append(Claimed(lease, body, attempt, crashes, wait_us / 1000))
                wait = reply[0] / 1000  # the script answers in µs
                if wait >= 0 and (next_due is None or wait < next_due):
                    next_due = wait
        return ClaimBatch(jobs, next_due)

    def extend(self, leases: Sequence[Lease], lease_ms: int) -> list[int]:
        def call(queue: str, chunk: Sequence[Lease]) -> list[int]:
            k = self.keys.queue(queue)
            args: list[Any] = [lease_ms]
            for lease in chunk:
                args += [lease.job_id, lease.token]
            return _digits(
                self.scripts.extend([k.running, k.tokens, k.cancels], args, client=self.client)
            )

        return self._per_queue(leases, lambda lease: lease, call, int)

    def _finished_args(self, k: QueueKeys) -> list[Any]:
        return [k.done, self.retention.finished_max, self.retention.finished_ttl_ms]

    def ack(self, items: Sequence[Ack]) -> list[bool]:
        def call(queue: str, chunk: Sequence[Ack]) -> list[int]:
            k = self.keys.queue(queue)
            keys = [k.running, k.jobs, k.attempts, k.crashes, k.tokens, k.owners, k.failures]
            keys += [k.finished, k.endings, k.cancels, k.stats]
            args = self._finished_args(k)
            for item in chunk:
                keys.append(k.result(item.lease.job_id))
                keep = item.result is not None and item.result_ttl_ms > 0
                ttl = item.result_ttl_ms if keep else 0
                args += [item.lease.job_id, item.lease.token, ttl, item.result or b""]
            return _digits(self.scripts.ack(keys, args, client=self.client))

        return self._per_queue(items, lambda item: item.lease, call)

    def retry(self, items: Sequence[RetryLater]) -> list[bool]:
        def call(queue: str, chunk: Sequence[RetryLater]) -> list[int]:
            k = self.keys.queue(queue)
            keys = [k.waiting, k.running, k.attempts, k.tokens, k.owners, k.failures, k.jobs]
            keys += [k.crashes, k.cancels, k.finished, k.endings, k.stats, k.due, k.due_at]
            args: list[Any] = [k.wake, *self._finished_args(k)]
            for item in chunk:
                failure = item.failure.pack() if item.failure else b""
                args += [item.lease.job_id, item.lease.token, max(item.delay_ms, 0)]
                args += [1 if item.count_attempt else 0, failure]
            return _digits(self.scripts.retry(keys, args, client=self.client))

        return self._per_queue(items, lambda item: item.lease, call)

    def bury(self, items: Sequence[Bury]) -> list[bool]:
        def call(queue: str, chunk: Sequence[Bury]) -> list[int]:
            k = self.keys.queue(queue)
            keys = [k.running, k.dead, k.jobs, k.attempts, k.crashes, k.tokens, k.owners]
            args: list[Any] = [k.done, self.retention.dead_max, self.retention.dead_ttl_ms]
            for item in chunk:
                args += [item.lease.job_id, item.lease.token, item.failure.pack()]
            return _digits(
                self.scripts.bury([*keys, k.failures, k.cancels, k.stats], args, client=self.client)
            )

        return self._per_queue(items, lambda item: item.lease, call)

    def recover(self, queues: Sequence[str]) -> int:
        total = 0
        with self._errors():
            for queue in queues:
                k = self.keys.queue(queue)
                keys = [k.due, k.running, k.crashes, k.tokens, k.owners, k.due_at, k.waiting]
                while True:
                    count = int(self.scripts.recover(keys, [1000], client=self.client))
                    total += count
                    if count < 1000:
                        break
        return total

    def _per_queue(
        self,
        items: Sequence[T],
        lease_of: Callable[[T], Lease],
        call: Callable[[str, Sequence[T]], list[int]],
        reply: Callable[[int], Any] = bool,
    ) -> list[Any]:
        """Run ``call`` once per queue (and chunk), and give the replies back in item order."""
        done: dict[int, Any] = {}
        by_queue: dict[str, list[int]] = defaultdict(list)
        for index, item in enumerate(items):
            by_queue[lease_of(item).queue].append(index)
        with self._errors():
            for queue, indexes in by_queue.items():
                for chunk in _chunks(indexes):
                    flags = call(queue, [items[i] for i in chunk])
                    done.update(zip(chunk, (reply(f) for f in flags), strict=True))
        return [done[i] for i in range(len(items))]

    def watch(self, queues: Sequence[str], wake: Callable[[int], None]) -> Callable[[], None]:
        channels = [self.keys.queue(q).wake for q in queues]
        watcher = Watcher(self._raw_url, channels, wake)
        watcher.start()
        return watcher.stop

    def warnings(self) -> list[str]:
        # an evicting policy may drop any key when memory runs short: a lease, a token, a
        # waiting job; only noeviction turns "full" into an error a producer sees
        with self._errors():
            policy = self._maxmemory_policy()
        if policy is None:
            return [
                f"cannot read the maxmemory-policy of Redis at {self.url}: make sure it is "
                "noeviction, or jobs and leases may be evicted"
            ]
        if policy != "noeviction":
            return [
                f"Redis at {self.url} has maxmemory-policy {policy}: when its memory is full it "
                "evicts keys, so leases and waiting jobs could vanish; set it to noeviction"
            ]
        return []

    def _maxmemory_policy(self) -> str | None:
        """The server's eviction policy, or None if neither CONFIG nor INFO is allowed."""
        try:
            return str(self.client.config_get("maxmemory-policy")["maxmemory-policy"])
        except (redis.ResponseError, KeyError):
            pass  # CONFIG is often denied by an ACL or renamed by a managed service
        try:
            return str(self.client.info("memory")["maxmemory_policy"])
        except (redis.ResponseError, KeyError):
            return None

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            client.close()  # gives its connection back to the pool
        self._shared.close()  # made by from_url, it closes the pool (every connection) too
