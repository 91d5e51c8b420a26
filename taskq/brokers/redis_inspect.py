"""Inspection and repair of a Redis broker: counts, single jobs, dead letters, worker heartbeats."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import redis

from ..serialization import packb, unpackb
from . import Retention
from .base import (
    LISTED_STATES,
    Failure,
    JobRecord,
    MinuteCounts,
    QueueCounts,
    WorkerInfo,
    check_page,
)
from .redis_keys import NamespaceKeys, QueueKeys
from .redis_scripts import Scripts
from .redis_watch import FinishWaiter

# due list entries scanned for a job's due time (~0.2 ms of Redis time): past them, a job is
# reported due with no due time, rather than hold Redis up for a long scan
DUE_TIME_SCAN = 10_000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisInspection:
    """The :class:`~taskq.brokers.base.Inspector` half of :class:`RedisBroker`."""

    keys: NamespaceKeys
    scripts: Scripts
    retention: Retention

    @property
    def client(self) -> redis.Redis:
        """This thread's Redis client (:attr:`RedisBroker.client`)."""
        raise NotImplementedError

    def _errors(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def queues(self) -> list[str]:
        with self._errors():
            return sorted(_text(q) for q in self.client.smembers(self.keys.queues))

    def counts(self, queue: str) -> QueueCounts:
        k = self.keys.queue(queue)
        with self._errors():
            due, scheduled, running, dead = self.scripts.counts(
                [k.waiting, k.running, k.dead, k.due], client=self.client
            )
        return QueueCounts(int(due), int(scheduled), int(running), int(dead))

    def get(self, queue: str, job_id: str) -> JobRecord | None:
        k = self.keys.queue(queue)
        listed = False  # in the due list
        with self._errors():
            for _ in range(2):
                pipe = self.client.pipeline(transaction=True)
                pipe.time()
                for zset in (k.waiting, k.running, k.dead, k.finished):
                    pipe.zscore(zset, job_id)
                for hash_ in (k.jobs, k.attempts, k.failures, k.owners, k.cancels, k.endings):
                    pipe.hget(hash_, job_id)
                pipe.get(k.result(job_id))
                now, due, lease, dead, finished, *fields, result = pipe.execute()
                body, attempt, failure, owner, cancel, ending = fields
                if body is None or due is not None or lease is not None or dead is not None:
                    break
                # a body in none of the sets: the job is in the due list, unless a claim took it
                # since (then look again)
                keys = [k.due, k.due_at, k.jobs, k.waiting, k.running, k.dead]
                found = self.scripts.due_time(keys, [job_id, DUE_TIME_SCAN], client=self.client)
                if found is not None:
                    listed = True
                    due = int(found) or None  # 0: further on in the list than the scan goes
                    break
        if listed or due is not None or lease is not None or dead is not None:
            row = [due, lease, dead, body, attempt, failure, owner, cancel]
            return _record(queue, job_id, now[0] * 1_000_000 + now[1], row)
        if finished is not None and ending is not None:
            state, attempts, worker, kept = unpackb(ending)
            return JobRecord(
                queue,
                job_id,
                state,
                None,
                int(attempts),
                finished_at_ms=int(finished),
                worker=_text(worker) if worker else None,
                result=result if state == "succeeded" else None,
                result_kept=bool(kept),
            )
        if result is not None:
            return JobRecord(queue, job_id, "succeeded", None, 0, result=result, result_kept=True)
        return None

    def cancel(self, queue: str, job_id: str) -> str | None:
        k = self.keys.queue(queue)
        keys = [k.waiting, k.jobs, k.attempts, k.crashes, k.failures, k.running, k.cancels]
        keys += [k.finished, k.endings, k.dead, k.due, k.due_at]
        retention = self.retention
        args = [job_id, k.done, retention.finished_max, retention.finished_ttl_ms]
        with self._errors():
            done = int(self.scripts.cancel(keys, args, client=self.client))
        return {1: "cancelled", 2: "requested"}.get(done)

    def jobs(self, queue: str, state: str, offset: int = 0, limit: int = 100) -> list[JobRecord]:
        if state not in LISTED_STATES:
            raise ValueError(f"state must be one of {', '.join(LISTED_STATES)}, got {state!r}")
        check_page(offset, limit)
        k = self.keys.queue(queue)
        with self._errors():
            seconds, micros = self.client.time()
            now_us = seconds * 1_000_000 + micros
            found: list[tuple[bytes, float]]
            if state == "dead":
                found = self.client.zrevrange(k.dead, offset, offset + limit - 1, True)  # type: ignore[assignment]
            elif state == "running":
                found = self.client.zrange(k.running, offset, offset + limit - 1, withscores=True)  # type: ignore[assignment]
            elif state == "due":
                found = self._due(k, now_us, offset, limit)
            else:
                found = self.client.zrangebyscore(  # type: ignore[assignment]
                    k.waiting, f"({now_us}", "+inf", start=offset, num=limit, withscores=True
                )
            if not found:
                return []
            ids = [_text(i) for i, _ in found]
            pipe = self.client.pipeline(transaction=False)
            for hash_ in (k.jobs, k.attempts, k.failures, k.owners, k.cancels):
                pipe.hmget(hash_, ids)
            columns = pipe.execute()
        records = []
        for n, (job_id, score) in enumerate(zip(ids, (s for _, s in found), strict=True)):
            scores: list[Any] = [None, None, None]
            scores[{"running": 1, "dead": 2}.get(state, 0)] = score
            records.append(_record(queue, job_id, now_us, [*scores, *(c[n] for c in columns)]))
        return records

    def _due(self, k: QueueKeys, now_us: int, offset: int, limit: int) -> list[tuple[bytes, float]]:
        """Due jobs in the order claims take them: the due list and the jobs of the waiting set
        whose due time has come, merged by due time."""
        end = offset + limit
        pipe = self.client.pipeline(transaction=True)
        pipe.lrange(k.due, 0, end - 1)
        pipe.lrange(k.due_at, 0, end - 1)
        pipe.zrangebyscore(k.waiting, "-inf", now_us, start=0, num=end, withscores=True)
        ids, times, came = pipe.execute()
        listed = [(job_id, float(at)) for job_id, at in zip(ids, times, strict=False)]
        merged = heapq.merge(listed, came, key=lambda pair: pair[1])  # stable: the list first
        return list(itertools.islice(merged, offset, end))

    def finishes(self, queue: str, job_id: str) -> FinishWaiter:
        with self._errors():
            return FinishWaiter(self.client, self.keys.queue(queue).done, job_id)

    def rates(self, queue: str, minutes: int = 5) -> list[MinuteCounts]:
        with self._errors():
            seconds, _ = self.client.time()
            stats = {
                _text(f): int(v)
                for f, v in self.client.hgetall(self.keys.queue(queue).stats).items()
            }
        minute = int(seconds) // 60
        out = []
        for m in range(minute, minute - min(minutes, 60), -1):
            slot = m % 60
            if stats.get(f"t{slot}") == m:
                out.append(MinuteCounts(m * 60_000, stats[f"s{slot}"], stats[f"f{slot}"]))
            else:
                out.append(MinuteCounts(m * 60_000, 0, 0))
        return out

    def dead(self, queue: str, offset: int = 0, limit: int = 100) -> list[JobRecord]:
        return self.jobs(queue, "dead", offset, limit)

    def requeue_dead(self, queue: str, job_ids: Sequence[str]) -> int:
        if not job_ids:
            return 0
        k = self.keys.queue(queue)
        keys = [k.dead, k.due, k.attempts, k.crashes, k.jobs, k.due_at]
        with self._errors():
            args = [k.wake, *job_ids]
            return int(self.scripts.requeue_dead(keys, args, client=self.client))

    def purge_dead(self, queue: str) -> int:
        k = self.keys.queue(queue)
        keys = [k.dead, k.jobs, k.attempts, k.crashes, k.failures]
        total = 0
        with self._errors():
            while count := int(self.scripts.purge_dead(keys, [1000], client=self.client)):
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


def _record(queue: str, job_id: str, now_us: int, row: list[Any]) -> JobRecord:
    """A waiting, running or dead job from its scores (due in µs, the others in ms) and hash
    fields, by the server's clock ``now_us``; a job with none of them is in the due list, too far
    from its head for its due time to be looked up."""
    due, lease, dead, body, attempt, failure, owner, cancel = row
    fields: dict[str, Any] = {
        "body": body,
        "attempt": int(attempt or 0),
        "failure": Failure.unpack(failure) if failure else None,
        "cancel_requested": bool(cancel),
    }
    if due is not None:
        state = "due" if due <= now_us else "scheduled"
        return JobRecord(queue, job_id, state, due_at_ms=int(due // 1000), **fields)
    if lease is not None:
        worker = _text(owner) if owner else None
        return JobRecord(
            queue, job_id, "running", lease_until_ms=int(lease), worker=worker, **fields
        )
    if dead is not None:
        return JobRecord(queue, job_id, "dead", finished_at_ms=int(dead), **fields)
    return JobRecord(queue, job_id, "due", **fields)
