"""Every Redis key and channel name taskq uses, built in one place.

Keys of one queue share the hash tag ``{queue}``, so a queue lives in one Redis Cluster slot and
every script touches one slot::

    {ns}:{q}:due         list  job ids                            jobs due when they were written
    {ns}:{q}:due_at      list  due time (µs) of each job in due, in the same order
    {ns}:{q}:waiting     zset  job id -> due time (µs)          jobs with a due time of their own
    {ns}:{q}:running     zset  job id -> lease end (ms)          claimed jobs
    {ns}:{q}:jobs        hash  job id -> msgpack job envelope    waiting, running and dead jobs
    {ns}:{q}:attempts    hash  job id -> claims so far
    {ns}:{q}:crashes     hash  job id -> leases that expired
    {ns}:{q}:tokens      hash  job id -> fencing token of the current lease
    {ns}:{q}:owners      hash  job id -> worker holding the lease
    {ns}:{q}:seq         string  last fencing token handed out
    {ns}:{q}:failures    hash  job id -> last failure (msgpack)
    {ns}:{q}:dead        zset  job id -> buried at (ms)
    {ns}:{q}:result:<id> string  msgpack result, with a time to live
    {ns}:{q}:finished    zset  job id -> finished at (ms)        succeeded and cancelled jobs
    {ns}:{q}:endings     hash  job id -> msgpack [state, attempt, worker, result kept]
    {ns}:{q}:cancels     hash  job id -> 1                       running jobs asked to stop
    {ns}:{q}:stats       hash  t<slot>/s<slot>/f<slot>: a 60-slot ring of per-minute counts
    {ns}:{q}:wake        channel  published on enqueue/retry: ms until the new job is due
    {ns}:{q}:done        channel  published on ack/bury/cancel: msgpack list of ended job ids
    {ns}:queues          set   queue names ever used
    {ns}:workers         zset  worker id -> last heartbeat (ms)
    {ns}:worker:<id>     string  msgpack worker info, with a time to live

A job due when it is written (a ``delay()``, a retry without backoff, a dead job put back) joins
the tail of ``due``, and its due time the tail of ``due_at``: the two lists keep it in ~35 bytes,
where a zset entry costs ~129. A job a dead worker held (a recovered lease) or a stopping worker
handed back goes back to their head, as it was before its claim, due at the earliest due time
there is. Both lists stay in due order: the tail grows by the server's clock, the head by the
earliest due time. A job with a due time of its own (a delay, a due-at, a backoff) waits in
``waiting``. A claim merges the heads of both by due time, so jobs run in due order, as from one
zset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True)
class QueueKeys:
    """The key names of one queue (each built once: every script call passes several)."""

    namespace: str
    queue: str

    def _key(self, name: str) -> str:
        return f"{self.namespace}:{{{self.queue}}}:{name}"

    @cached_property
    def due(self) -> str:
        return self._key("due")

    @cached_property
    def due_at(self) -> str:
        return self._key("due_at")

    @cached_property
    def waiting(self) -> str:
        return self._key("waiting")

    @cached_property
    def running(self) -> str:
        return self._key("running")

    @cached_property
    def jobs(self) -> str:
        return self._key("jobs")

    @cached_property
    def attempts(self) -> str:
        return self._key("attempts")

    @cached_property
    def crashes(self) -> str:
        return self._key("crashes")

    @cached_property
    def tokens(self) -> str:
        return self._key("tokens")

    @cached_property
    def owners(self) -> str:
        return self._key("owners")

    @cached_property
    def seq(self) -> str:
        return self._key("seq")

    @cached_property
    def failures(self) -> str:
        return self._key("failures")

    @cached_property
    def dead(self) -> str:
        return self._key("dead")

    @cached_property
    def finished(self) -> str:
        return self._key("finished")

    @cached_property
    def endings(self) -> str:
        return self._key("endings")

    @cached_property
    def cancels(self) -> str:
        return self._key("cancels")

    @cached_property
    def stats(self) -> str:
        return self._key("stats")

    @cached_property
    def wake(self) -> str:
        return self._key("wake")

    @cached_property
    def done(self) -> str:
        return self._key("done")

    @cached_property
    def enqueue_keys(self) -> list[str]:
        """The keys of ``enqueue.lua``, in its order."""
        names = ("waiting", "due", "jobs", "attempts", "crashes", "failures", "dead", "due_at")
        return [getattr(self, name) for name in names]

    def result(self, job_id: str) -> str:
        return self._key(f"result:{job_id}")


@dataclass(frozen=True)
class NamespaceKeys:
    """The key names shared by all queues of a namespace."""

    namespace: str
    _queues: dict[str, QueueKeys] = field(default_factory=dict, compare=False, repr=False)

    def queue(self, queue: str) -> QueueKeys:
        keys = self._queues.get(queue)
        if keys is None:
            keys = self._queues[queue] = QueueKeys(self.namespace, queue)
        return keys

    @property
    def queues(self) -> str:
        return f"{self.namespace}:queues"

    @property
    def workers(self) -> str:
        return f"{self.namespace}:workers"

    def worker(self, worker: str) -> str:
        return f"{self.namespace}:worker:{worker}"
