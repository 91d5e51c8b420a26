"""Inspection and repair of a Redis broker: counts, single jobs, dead letters, worker heartbeats."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import redis

from ..serialization import packb, unpackb
from .base import Failure, JobRecord, QueueCounts, WorkerInfo
from .redis_keys import NamespaceKeys
from .redis_scripts import Scripts


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisInspection:
    """The :class:`~taskq.brokers.base.Inspector` half of :class:`RedisBroker`."""

    client: redis.Redis
    keys: NamespaceKeys
    scripts: Scripts

    def _errors(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def queues(self) -> list[str]:
        with self._errors():
            return sorted(_text(q) for q in self.client.smembers(self.keys.queues))

    def counts(self, queue: str) -> QueueCounts:
        k = self.keys.queue(queue)
        with self._errors():
            due, scheduled, running, dead = self.scripts.counts([k.waiting, k.running, k.dead])
        return QueueCounts(int(due), int(scheduled), int(running), int(dead))

    def get(self, queue: str, job_id: str) -> JobRecord | None:
        k = self.keys.queue(queue)
        with self._errors():
            pipe = self.client.pipeline(transaction=True)
            pipe.time()
            pipe.zscore(k.waiting, job_id)
            pipe.zscore(k.running, job_id)
            pipe.zscore(k.dead, job_id)
            pipe.hget(k.jobs, job_id)
            pipe.hget(k.attempts, job_id)
            pipe.hget(k.failures, job_id)
            pipe.get(k.result(job_id))
            now, due, lease, dead, body, attempt, failure, result = pipe.execute()
        now_ms = now[0] * 1000 + now[1] // 1000
        fields: dict[str, Any] = {
            "body": body,
            "attempt": int(attempt or 0),
            "failure": Failure.unpack(failure) if failure else None,
        }
        if due is not None:
            state = "due" if due <= now_ms else "scheduled"
            return JobRecord(queue, job_id, state, due_at_ms=int(due), **fields)
        if lease is not None:
            return JobRecord(queue, job_id, "running", lease_until_ms=int(lease), **fields)
        if dead is not None:
            return JobRecord(queue, job_id, "dead", **fields)
        if result is not None:
            return JobRecord(queue, job_id, "succeeded", None, 0, result=result)
        return None

    def cancel(self, queue: str, job_id: str) -> bool:
        k = self.keys.queue(queue)
        keys = [k.waiting, k.jobs, k.attempts, k.crashes, k.failures]
        with self._errors():
            return bool(self.scripts.cancel(keys, [job_id]))

    def dead(self, queue: str, offset: int = 0, limit: int = 100) -> list[JobRecord]:
        k = self.keys.queue(queue)
        with self._errors():
            ids = [_text(i) for i in self.client.zrevrange(k.dead, offset, offset + limit - 1)]
            if not ids:
                return []
            pipe = self.client.pipeline(transaction=True)
            pipe.hmget(k.jobs, ids)
            pipe.hmget(k.attempts, ids)
            pipe.hmget(k.failures, ids)
            bodies, attempts, failures = pipe.execute()
        return [
            JobRecord(
                queue,
                job_id,
                "dead",
                body,
                int(attempt or 0),
                failure=Failure.unpack(failure) if failure else None,
            )
            for job_id, body, attempt, failure in zip(ids, bodies, attempts, failures, strict=True)
        ]

    def requeue_dead(self, queue: str, job_ids: Sequence[str]) -> int:
        if not job_ids:
            return 0
        k = self.keys.queue(queue)
        keys = [k.dead, k.waiting, k.attempts, k.crashes, k.jobs]
        with self._errors():
            return int(self.scripts.requeue_dead(keys, list(job_ids)))

    def purge_dead(self, queue: str) -> int:
        k = self.keys.queue(queue)
        keys = [k.dead, k.jobs, k.attempts, k.crashes, k.failures]
        total = 0
        with self._errors():
            while count := int(self.scripts.purge_dead(keys, [1000])):
                total += count
        return total

    def heartbeat(self, info: WorkerInfo, ttl_ms: int) -> None:
        fields = [info.worker, info.host, info.pid, list(info.queues), info.concurrency]
        with self._errors():
            seconds, micros = self.client.time()
            now_ms = seconds * 1000 + micros // 1000
            pipe = self.client.pipeline(transaction=False)
            data = packb([*fields, info.running, info.started_at_ms, now_ms])
            pipe.set(self.keys.worker(info.worker), data, px=ttl_ms)
            pipe.zadd(self.keys.workers, {info.worker: now_ms})
            pipe.execute()

    def forget_worker(self, worker: str) -> None:
        with self._errors():
            self.client.delete(self.keys.worker(worker))
            self.client.zrem(self.keys.workers, worker)

    def workers(self) -> list[WorkerInfo]:
        with self._errors():
            names = [_text(w) for w in self.client.zrange(self.keys.workers, 0, -1)]
            pipe = self.client.pipeline(transaction=False)
            for name in names:
                pipe.get(self.keys.worker(name))
            found: list[WorkerInfo] = []
            gone: list[str] = []
            for name, data in zip(names, pipe.execute(), strict=True):
                if data is None:
                    gone.append(name)
                    continue
                worker, host, pid, queues, concurrency, running, started, seen = unpackb(data)
                found.append(
                    WorkerInfo(
                        worker, host, pid, tuple(queues), concurrency, running, started, seen
                    )
                )
            if gone:
                self.client.zrem(self.keys.workers, *gone)
        return found
