"""Inspection and repair of a SQLite broker: counts, single jobs, dead letters, heartbeats."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..serialization import packb, unpackb
from . import Retention
from .base import Failure, JobRecord, MinuteCounts, QueueCounts, WorkerInfo, check_page
from .sqlite_db import Database
from .sqlite_finish import finish, get_finished, rates
from .sqlite_watch import FinishWaiter

_JOB_COLUMNS = (
    "queue, job_id, state, body, attempt, due_ms, lease_until_ms, failure, dead_at_ms, worker,"
    " cancel_requested"
)
_ORDER = {  # how Inspector.jobs orders each state
    "due": "state = 'waiting' AND due_ms <= :now ORDER BY due_ms, rowid",
    "scheduled": "state = 'waiting' AND due_ms > :now ORDER BY due_ms, rowid",
    "running": "state = 'running' ORDER BY lease_until_ms, rowid",
    "dead": "state = 'dead' ORDER BY dead_at_ms DESC, rowid DESC",
}


class SQLiteInspection:
    """The :class:`~taskq.brokers.base.Inspector` half of :class:`SQLiteBroker`."""

    namespace: str
    _db: Database
    _retention: Retention

    def _now(self) -> int:
        raise NotImplementedError

    def _bump_enqueued(self, conn: sqlite3.Connection, queue: str) -> None:
        """Tell watchers of ``queue`` that it has new work (creating its row on first use)."""
        conn.execute(
            "INSERT INTO taskq_queues (namespace, queue, enqueued) VALUES (?, ?, 1)"
            " ON CONFLICT (namespace, queue) DO UPDATE SET enqueued = enqueued + 1",
            (self.namespace, queue),
        )

    def queues(self) -> list[str]:
        rows = self._db.read(
            lambda conn: conn.execute(
                "SELECT queue FROM taskq_queues WHERE namespace = ? ORDER BY queue",
                (self.namespace,),
            ).fetchall()
        )
        return [str(queue) for (queue,) in rows]

    def counts(self, queue: str) -> QueueCounts:
        def read(conn: sqlite3.Connection) -> Any:
            now = self._now()
            return conn.execute(
                "SELECT count(*) FILTER (WHERE state = 'waiting' AND due_ms <= :now),"
                " count(*) FILTER (WHERE state = 'waiting' AND due_ms > :now),"
                " count(*) FILTER (WHERE state = 'running'),"
                " count(*) FILTER (WHERE state = 'dead')"
                " FROM taskq_jobs WHERE namespace = :ns AND queue = :queue",
                {"now": now, "ns": self.namespace, "queue": queue},
            ).fetchone()

        due, scheduled, running, dead = self._db.read(read)
        return QueueCounts(int(due), int(scheduled), int(running), int(dead))

    def get(self, queue: str, job_id: str) -> JobRecord | None:
        def read(conn: sqlite3.Connection) -> JobRecord | None:
            now = self._now()
            key = (self.namespace, queue, job_id)
            row = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM taskq_jobs"
                " WHERE namespace = ? AND queue = ? AND job_id = ?",
                key,
            ).fetchone()
            if row is not None:
                return _record(row, now)
            # An expired result not yet swept counts as gone.
            kept = conn.execute(
                "SELECT result FROM taskq_results"
                " WHERE namespace = ? AND queue = ? AND job_id = ? AND expires_ms > ?",
                (*key, now),
            ).fetchone()
            result = None if kept is None else bytes(kept[0])
            finished = get_finished(conn, *key)
            if finished is not None:
                return replace(finished, result=result if finished.state == "succeeded" else None)
            if result is None:
                return None
            return JobRecord(queue, job_id, "succeeded", None, 0, result=result, result_kept=True)

        return self._db.read(read)

    def cancel(self, queue: str, job_id: str) -> str | None:
        def write(conn: sqlite3.Connection) -> str | None:
            key = (self.namespace, queue, job_id)
            where = "namespace = ? AND queue = ? AND job_id = ?"
            row = conn.execute(
                f"DELETE FROM taskq_jobs WHERE {where} AND state = 'waiting' RETURNING attempt",
                key,
            ).fetchone()
            if row is not None:
                record = JobRecord(queue, job_id, "cancelled", None, int(row[0]))
                finish(
                    conn,
                    self.namespace,
                    replace(record, finished_at_ms=self._now()),
                    self._retention,
                )
                return "cancelled"
            requested = conn.execute(
                f"UPDATE taskq_jobs SET cancel_requested = 1 WHERE {where} AND state = 'running'",
                key,
            ).rowcount
            return "requested" if requested else None

        return self._db.write(write)

    def jobs(self, queue: str, state: str, offset: int = 0, limit: int = 100) -> list[JobRecord]:
        if state not in _ORDER:
            raise ValueError(f"state must be one of {', '.join(_ORDER)}, got {state!r}")
        check_page(offset, limit)

        def read(conn: sqlite3.Connection) -> list[JobRecord]:
            now = self._now()
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM taskq_jobs WHERE namespace = :ns AND queue = :queue"
                f" AND {_ORDER[state]} LIMIT :limit OFFSET :offset",
                {
                    "ns": self.namespace,
                    "queue": queue,
                    "now": now,
                    "limit": limit,
                    "offset": offset,
                },
            ).fetchall()
            return [_record(row, now) for row in rows]

        return self._db.read(read)

    def finishes(self, queue: str, job_id: str) -> FinishWaiter:
        return FinishWaiter(self._db, self.namespace, queue, job_id)

    def rates(self, queue: str, minutes: int = 5) -> list[MinuteCounts]:
        return self._db.read(lambda conn: rates(conn, self.namespace, queue, self._now(), minutes))

    def dead(self, queue: str, offset: int = 0, limit: int = 100) -> list[JobRecord]:
        return self.jobs(queue, "dead", offset, limit)

    def requeue_dead(self, queue: str, job_ids: Sequence[str]) -> int:
        def write(conn: sqlite3.Connection) -> int:
            now = self._now()
            moved = 0
            for job_id in dict.fromkeys(job_ids):
                moved += conn.execute(
                    "UPDATE taskq_jobs SET state = 'waiting', due_ms = ?, dead_at_ms = NULL,"
                    " attempt = 0, crashes = 0"
                    " WHERE namespace = ? AND queue = ? AND job_id = ? AND state = 'dead'",
                    (now, self.namespace, queue, job_id),
                ).rowcount
            if moved:
                self._bump_enqueued(conn, queue)
            return moved

        return self._db.write(write)

    def purge_dead(self, queue: str) -> int:
        return self._db.write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM taskq_jobs WHERE namespace = ? AND queue = ? AND state = 'dead'",
                    (self.namespace, queue),
                ).rowcount
            )
        )

    def heartbeat(self, info: WorkerInfo, ttl_ms: int) -> None:
        fields = [info.worker, info.host, info.pid, list(info.queues), info.concurrency]
        data = packb([*fields, info.running, info.started_at_ms])

        def write(conn: sqlite3.Connection) -> None:
            now = self._now()
            conn.execute(
                "DELETE FROM taskq_workers WHERE namespace = ? AND expires_ms <= ?",
                (self.namespace, now),
            )
            conn.execute(
                "INSERT OR REPLACE INTO taskq_workers"
                " (namespace, worker, info, seen_at_ms, expires_ms) VALUES (?, ?, ?, ?, ?)",
                (self.namespace, info.worker, data, now, now + ttl_ms),
            )

        self._db.write(write)

    def forget_worker(self, worker: str) -> None:
        self._db.write(
            lambda conn: conn.execute(
                "DELETE FROM taskq_workers WHERE namespace = ? AND worker = ?",
                (self.namespace, worker),
            )
        )

    def workers(self) -> list[WorkerInfo]:
        rows = self._db.read(
            lambda conn: conn.execute(
                "SELECT info, seen_at_ms FROM taskq_workers"
                " WHERE namespace = ? AND expires_ms > ? ORDER BY worker",
                (self.namespace, self._now()),
            ).fetchall()
        )
        found = []
        for data, seen_at_ms in rows:
            worker, host, pid, queues, concurrency, running, started = unpackb(data)
            found.append(
                WorkerInfo(
                    worker, host, pid, tuple(queues), concurrency, running, started, int(seen_at_ms)
                )
            )
        return found


def _record(row: Any, now: int) -> JobRecord:
    queue, job_id, state, body, attempt, due_ms, lease_until_ms, failure = row[:8]
    dead_at_ms, worker, cancel_requested = row[8:]
    if state == "waiting":
        state = "due" if due_ms <= now else "scheduled"
    return JobRecord(
        queue,
        job_id,
        state,
        bytes(body),
        int(attempt),
        due_at_ms=int(due_ms) if state in ("due", "scheduled") else None,
        lease_until_ms=int(lease_until_ms) if state == "running" else None,
        failure=Failure.unpack(failure) if failure is not None else None,
        finished_at_ms=int(dead_at_ms) if state == "dead" else None,
        worker=worker if state == "running" else None,
        cancel_requested=bool(cancel_requested),
    )
