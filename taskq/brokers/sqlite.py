"""A broker on one SQLite file, shared safely by the threads and processes of one machine."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

from . import Retention
from .base import (
    CANCEL_REQUESTED,
    REFUSED,
    RENEWED,
    Ack,
    Bury,
    ClaimBatch,
    Claimed,
    EnqueueItem,
    JobRecord,
    Lease,
    RetryLater,
    due_after,
)
from .sqlite_db import Database, parse_url
from .sqlite_finish import (
    SWEEP_LIMIT,
    cancel_on_retry,
    count,
    finish,
    forget,
    sweep_results,
    trim_dead,
)
from .sqlite_fs import network_filesystem
from .sqlite_inspect import SQLiteInspection
from .sqlite_watch import Watcher

_ENQUEUE = """
    INSERT INTO taskq_jobs (namespace, queue, job_id, state, body, due_ms)
    VALUES (?, ?, ?, 'waiting', ?, ?)
    ON CONFLICT (namespace, queue, job_id) DO UPDATE SET
        state = 'waiting', body = excluded.body, due_ms = excluded.due_ms,
        lease_until_ms = NULL, dead_at_ms = NULL, attempt = 0, crashes = 0,
        worker = NULL, failure = NULL, cancel_requested = 0
    WHERE state = 'dead'"""

# A new token comes from the queue row's token_seq, bumped after the statement; every job of one
# claim shares it, which is enough because a token only has to be new for its own job.
_NEXT_TOKEN = """coalesce((SELECT token_seq + 1 FROM taskq_queues
                           WHERE namespace = :ns AND queue = :queue), 1)"""

_CLAIM = f"""
    UPDATE taskq_jobs SET state = 'running', lease_until_ms = :until, attempt = attempt + 1,
        worker = :worker, token = {_NEXT_TOKEN}
    WHERE rowid IN (SELECT rowid FROM taskq_jobs
                    WHERE namespace = :ns AND queue = :queue AND state = 'waiting'
                      AND due_ms <= :now + :ahead
                    ORDER BY due_ms, rowid LIMIT :limit)
    RETURNING job_id, body, attempt, crashes, token, due_ms, rowid"""

# The due time that puts a job back ahead of every waiting one, as it was before its claim: now,
# or 1 ms before the first waiting job if that one is due already (claims go by due time, then
# rowid). Not correlated, so SQLite reads it once per statement, before any row changes.
_FRONT_DUE = """min(:now, coalesce((SELECT min(due_ms) - 1 FROM taskq_jobs
                                    WHERE namespace = :ns AND queue = :queue
                                      AND state = 'waiting'), :now))"""

_RECOVER = f"""
    UPDATE taskq_jobs SET state = 'waiting', due_ms = {_FRONT_DUE}, lease_until_ms = NULL,
        worker = NULL, crashes = crashes + 1, token = {_NEXT_TOKEN}
    WHERE rowid IN (SELECT rowid FROM taskq_jobs
                    WHERE namespace = :ns AND queue = :queue AND state = 'running'
                      AND lease_until_ms < :now
                    LIMIT :limit)"""

_RUNNING = "namespace = ? AND queue = ? AND job_id = ? AND state = 'running' AND token = ?"

_RETRY = f"""
    UPDATE taskq_jobs SET state = 'waiting', due_ms = ?, lease_until_ms = NULL, worker = NULL,
        attempt = attempt - ?, failure = coalesce(?, failure)
    WHERE {_RUNNING}"""


class SQLiteBroker(SQLiteInspection):
    """A :class:`~taskq.brokers.base.Broker` and :class:`~taskq.brokers.base.Inspector` on SQLite.

    Nothing another process needs is kept in this object: every state, counter and token is in
    the file, and every change is one ``BEGIN IMMEDIATE`` transaction.
    """

    def __init__(
        self,
        url: str,
        namespace: str,
        retention: Retention,
        clock: Callable[[], float] = time.time,
    ) -> None:
        path, busy_timeout_ms = parse_url(url)
        self.url = f"sqlite:///{os.path.abspath(path)}"  # says where, whatever the cwd
        self.namespace = namespace
        self._retention = retention
        self._clock = clock
        self._db = Database(path, busy_timeout_ms)
        self._watchers_lock = threading.Lock()
        self._watchers: set[Watcher] = set()

    def _now(self) -> int:
        return int(self._clock() * 1000)

    def _lease_key(self, lease: Lease) -> tuple[str, str, str, int]:
        return (self.namespace, lease.queue, lease.job_id, lease.token)

    def enqueue(self, items: Sequence[EnqueueItem]) -> list[bool]:
        def write(conn: sqlite3.Connection) -> list[bool]:
            now = self._now()
            out: list[bool] = []
            for item in items:
                due = item.due(now)
                key = (self.namespace, item.queue, item.job_id)
                out.append(conn.execute(_ENQUEUE, (*key, item.body, due)).rowcount == 1)
                if out[-1]:  # what an earlier job of that id left belongs to that job only
                    forget(conn, *key)
            for queue in dict.fromkeys(i.queue for i, ok in zip(items, out, strict=True) if ok):
                self._bump_enqueued(conn, queue)
            return out

        return self._db.write(write)

    def claim(
        self, queues: Sequence[str], limit: int, lease_ms: int, worker: str, ahead_ms: float = 0
    ) -> ClaimBatch:
        def write(conn: sqlite3.Connection) -> ClaimBatch:
            now = self._now()
            self._sweep(conn, queues, now)
            jobs: list[Claimed] = []
            for queue in dict.fromkeys(queues):
                if len(jobs) < limit:
                    params = {"ahead": int(ahead_ms), "until": now + lease_ms, "worker": worker}
                    jobs += self._claim_queue(conn, queue, limit - len(jobs), now, params)
            return ClaimBatch(jobs, self._next_due(conn, queues, now))

        return self._db.write(write)

    def _claim_queue(
        self, conn: sqlite3.Connection, queue: str, limit: int, now: int, params: dict[str, object]
    ) -> list[Claimed]:
        params = {**params, "now": now, "ns": self.namespace, "queue": queue, "limit": limit}
        rows = conn.execute(_CLAIM, params).fetchall()
        if not rows:
            return []
        self._bump_token_seq(conn, queue)
        rows.sort(key=lambda row: (row[5], row[6]))  # RETURNING's order is unspecified
        return [
            Claimed(
                Lease(queue, job_id, int(token)),
                bytes(body),
                int(attempt),
                int(crashes),
                max(int(due) - now, 0),
            )
            for job_id, body, attempt, crashes, token, due, _ in rows
        ]

    def _bump_token_seq(self, conn: sqlite3.Connection, queue: str) -> None:
        conn.execute(
            "UPDATE taskq_queues SET token_seq = token_seq + 1 WHERE namespace = ? AND queue = ?",
            (self.namespace, queue),
        )

    def _next_due(self, conn: sqlite3.Connection, queues: Sequence[str], now: int) -> int | None:
        dues = [
            conn.execute(
                "SELECT min(due_ms) FROM taskq_jobs"
                " WHERE namespace = ? AND queue = ? AND state = 'waiting'",
                (self.namespace, queue),
            ).fetchone()[0]
            for queue in dict.fromkeys(queues)
        ]
        known = [int(due) for due in dues if due is not None]
        return max(0, min(known) - now) if known else None

    def _sweep(self, conn: sqlite3.Connection, queues: Sequence[str], now: int) -> None:
        """Bounded housekeeping before a claim: expired leases, results and dead jobs."""
        for queue in dict.fromkeys(queues):
            self._recover_queue(conn, queue, now, SWEEP_LIMIT)
            trim_dead(conn, self.namespace, queue, now, self._retention, by_count=False)
        sweep_results(conn, self.namespace, now)

    def _recover_queue(self, conn: sqlite3.Connection, queue: str, now: int, limit: int) -> int:
        params = {"ns": self.namespace, "queue": queue, "now": now, "limit": limit}
        count = int(conn.execute(_RECOVER, params).rowcount)
        if count:
            self._bump_token_seq(conn, queue)
        return count

    def _front_due(self, conn: sqlite3.Connection, queue: str, now: int) -> int:
        where = {"now": now, "ns": self.namespace, "queue": queue}
        return int(conn.execute(f"SELECT {_FRONT_DUE}", where).fetchone()[0])

    def extend(self, leases: Sequence[Lease], lease_ms: int) -> list[int]:
        def write(conn: sqlite3.Connection) -> list[int]:
            now = self._now()
            sql = (
                f"UPDATE taskq_jobs SET lease_until_ms = ? WHERE {_RUNNING} AND lease_until_ms >= ?"
                " RETURNING cancel_requested"
            )
            rows = [
                conn.execute(sql, (now + lease_ms, *self._lease_key(lease), now)).fetchone()
                for lease in leases
            ]
            return [REFUSED if r is None else CANCEL_REQUESTED if r[0] else RENEWED for r in rows]

        return self._db.write(write)

    def ack(self, items: Sequence[Ack]) -> list[bool]:
        def write(conn: sqlite3.Connection) -> list[bool]:
            now = self._now()
            out: list[bool] = []
            for item in items:
                key = self._lease_key(item.lease)
                sql = f"DELETE FROM taskq_jobs WHERE {_RUNNING} RETURNING attempt, worker"
                row = conn.execute(sql, key).fetchone()
                out.append(row is not None)
                if row is None:
                    continue
                forget(conn, *key[:3])
                keep = item.result is not None and item.result_ttl_ms > 0
                if keep:
                    conn.execute(
                        "INSERT INTO taskq_results"
                        " (namespace, queue, job_id, result, expires_ms) VALUES (?, ?, ?, ?, ?)",
                        (*key[:3], item.result, now + item.result_ttl_ms),
                    )
                record = JobRecord(key[1], key[2], "succeeded", None, int(row[0]))
                record = replace(record, finished_at_ms=now, worker=row[1], result_kept=keep)
                finish(conn, self.namespace, record, self._retention)
            for queue, n in Counter(
                i.lease.queue for i, ok in zip(items, out, strict=True) if ok
            ).items():
                count(conn, self.namespace, queue, now, succeeded=n)
            sweep_results(conn, self.namespace, now)
            return out

        return self._db.write(write)

    def retry(self, items: Sequence[RetryLater]) -> list[bool]:
        def write(conn: sqlite3.Connection) -> list[bool]:
            now = self._now()
            out: list[bool] = []
            front: dict[str, int] = {}  # queue -> due time of the jobs handed back in this call
            for item in items:
                failure = item.failure.pack() if item.failure is not None else None
                uncount = 0 if item.count_attempt else 1
                key = self._lease_key(item.lease)
                if cancel_on_retry(conn, key, uncount, now, self._retention):
                    out.append(True)
                    continue
                due = due_after(now, item.delay_ms)
                if item.to_front:  # read once per queue: each job made waiting moves the head
                    queue = item.lease.queue
                    if queue not in front:
                        front[queue] = self._front_due(conn, queue, now)
                    due = front[queue]
                params = (due, uncount, failure, *key)
                out.append(conn.execute(_RETRY, params).rowcount == 1)
            accepted = [i for i, ok in zip(items, out, strict=True) if ok]
            # counted only when accepted: a refused retry (a stale lease) changes nothing
            failed = Counter(i.lease.queue for i in accepted if i.failure is not None)
            for queue, n in failed.items():
                count(conn, self.namespace, queue, now, failed=n)
            for queue in dict.fromkeys(i.lease.queue for i in accepted):
                self._bump_enqueued(conn, queue)
            return out

        return self._db.write(write)

    def bury(self, items: Sequence[Bury]) -> list[bool]:
        def write(conn: sqlite3.Connection) -> list[bool]:
            now = self._now()
            sql = (
                "UPDATE taskq_jobs SET state = 'dead', dead_at_ms = ?, failure = ?,"
                f" lease_until_ms = NULL, worker = NULL, cancel_requested = 0 WHERE {_RUNNING}"
            )
            out = [
                conn.execute(sql, (now, item.failure.pack(), *self._lease_key(item.lease))).rowcount
                == 1
                for item in items
            ]
            for queue, n in Counter(
                i.lease.queue for i, ok in zip(items, out, strict=True) if ok
            ).items():
                trim_dead(conn, self.namespace, queue, now, self._retention, by_count=True)
                count(conn, self.namespace, queue, now, failed=n)
            return out

        return self._db.write(write)

    def recover(self, queues: Sequence[str]) -> int:
        def write(conn: sqlite3.Connection) -> int:
            now = self._now()
            return sum(self._recover_queue(conn, q, now, -1) for q in dict.fromkeys(queues))

        return self._db.write(write)

    def watch(self, queues: Sequence[str], wake: Callable[[int], None]) -> Callable[[], None]:
        watcher = Watcher(self._db, self.namespace, queues, wake, self._now)
        with self._watchers_lock:
            self._watchers.add(watcher)

        def stop() -> None:
            with self._watchers_lock:
                self._watchers.discard(watcher)
            watcher.stop()

        return stop

    def warnings(self) -> list[str]:
        # a file still locked since the broker was opened is unreachable: said at once
        self._db.open_now()
        filesystem = network_filesystem(self._db.path)
        if filesystem is None:
            return []
        return [
            f"SQLite database {self._db.path!r} is on a network filesystem ({filesystem}):"
            " SQLite's locks are unreliable there and its WAL mode needs every process on one"
            " machine, so the file may be corrupted and jobs lost; keep it on a local disk"
        ]

    def close(self) -> None:
        with self._watchers_lock:
            watchers = list(self._watchers)
            self._watchers.clear()
        for watcher in watchers:
            watcher.stop()
        self._db.close()
