"""Finished records and per-minute counts of the SQLite broker, written inside its transactions."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from . import Retention
from .base import JobRecord, MinuteCounts

SWEEP_LIMIT = 100  # records dropped by age per call, so no single call pays for a backlog
MINUTES_KEPT = 60


def finish(
    conn: sqlite3.Connection,
    namespace: str,
    record: JobRecord,
    retention: Retention,
) -> None:
    """Keep the finished record of a job that left ``taskq_jobs``, then trim the queue's."""
    key = (namespace, record.queue)
    conn.execute(
        "INSERT OR REPLACE INTO taskq_finished (namespace, queue, job_id, state, finished_at_ms,"
        " attempt, worker, result_kept, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?,"
        " coalesce((SELECT max(seq) FROM taskq_finished WHERE namespace = ? AND queue = ?), 0)"
        " + 1)",
        (
            *key,
            record.job_id,
            record.state,
            record.finished_at_ms,
            record.attempt,
            record.worker,
            int(record.result_kept),
            *key,
        ),
    )
    # by count: the seq range below the newest finished_max, found through the index
    conn.execute(
        "DELETE FROM taskq_finished WHERE namespace = ? AND queue = ? AND seq <="
        " (SELECT max(seq) FROM taskq_finished WHERE namespace = ? AND queue = ?) - ?",
        (*key, *key, retention.finished_max),
    )
    oldest_kept = (record.finished_at_ms or 0) - retention.finished_ttl_ms
    conn.execute(
        "DELETE FROM taskq_finished WHERE rowid IN (SELECT rowid FROM taskq_finished"
        " WHERE namespace = ? AND queue = ? ORDER BY seq LIMIT ?) AND finished_at_ms < ?",
        (*key, SWEEP_LIMIT, oldest_kept),
    )


def forget(conn: sqlite3.Connection, namespace: str, queue: str, job_id: str) -> None:
    """Drop what an earlier job of this id left behind (its finished record and result)."""
    for table in ("taskq_finished", "taskq_results"):
        conn.execute(
            f"DELETE FROM {table} WHERE namespace = ? AND queue = ? AND job_id = ?",
            (namespace, queue, job_id),
        )


def get_finished(
    conn: sqlite3.Connection, namespace: str, queue: str, job_id: str
) -> JobRecord | None:
    """The finished record of a job, if still kept."""
    row = conn.execute(
        "SELECT state, finished_at_ms, attempt, worker, result_kept FROM taskq_finished"
        " WHERE namespace = ? AND queue = ? AND job_id = ?",
        (namespace, queue, job_id),
    ).fetchone()
    if row is None:
        return None
    state, finished_at_ms, attempt, worker, result_kept = row
    return JobRecord(
        queue,
        job_id,
        str(state),
        None,
        int(attempt),
        finished_at_ms=int(finished_at_ms),
        worker=worker,
        result_kept=bool(result_kept),
    )


def count(
    conn: sqlite3.Connection,
    namespace: str,
    queue: str,
    now: int,
    succeeded: int = 0,
    failed: int = 0,
) -> None:
    """Add to this minute's counts of a queue; minutes older than an hour are dropped."""
    if not succeeded and not failed:
        return
    minute = now // 60_000
    conn.execute(
        "INSERT INTO taskq_stats (namespace, queue, minute, succeeded, failed)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, queue, minute) DO UPDATE SET"
        " succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed",
        (namespace, queue, minute, succeeded, failed),
    )
    conn.execute(
        "DELETE FROM taskq_stats WHERE namespace = ? AND queue = ? AND minute <= ?",
        (namespace, queue, minute - MINUTES_KEPT),
    )


def rates(
    conn: sqlite3.Connection, namespace: str, queue: str, now: int, minutes: int
) -> list[MinuteCounts]:
    """The counts of the last ``minutes`` minutes (at most an hour), the current one first."""
    minute = now // 60_000
    first = minute - min(minutes, MINUTES_KEPT) + 1
    rows = conn.execute(
        "SELECT minute, succeeded, failed FROM taskq_stats"
        " WHERE namespace = ? AND queue = ? AND minute >= ?",
        (namespace, queue, first),
    ).fetchall()
    found = {int(m): (int(s), int(f)) for m, s, f in rows}
    return [MinuteCounts(m * 60_000, *found.get(m, (0, 0))) for m in range(minute, first - 1, -1)]


def sweep_results(conn: sqlite3.Connection, namespace: str, now: int) -> None:
    """Drop a bounded number of expired results."""
    conn.execute(
        "DELETE FROM taskq_results WHERE rowid IN (SELECT rowid FROM taskq_results"
        " WHERE namespace = ? AND expires_ms <= ? LIMIT ?)",
        (namespace, now, SWEEP_LIMIT),
    )


def trim_dead(
    conn: sqlite3.Connection,
    namespace: str,
    queue: str,
    now: int,
    retention: Retention,
    by_count: bool,
) -> None:
    """Drop dead jobs past their age (a bounded number) and, ``by_count``, beyond the most kept."""
    key = (namespace, queue)
    conn.execute(
        "DELETE FROM taskq_jobs WHERE rowid IN (SELECT rowid FROM taskq_jobs"
        " WHERE namespace = ? AND queue = ? AND state = 'dead' AND dead_at_ms < ? LIMIT ?)",
        (*key, now - retention.dead_ttl_ms, SWEEP_LIMIT),
    )
    if by_count:
        conn.execute(
            "DELETE FROM taskq_jobs WHERE rowid IN (SELECT rowid FROM taskq_jobs"
            " WHERE namespace = ? AND queue = ? AND state = 'dead'"
            " ORDER BY dead_at_ms DESC, rowid DESC LIMIT -1 OFFSET ?)",
            (*key, retention.dead_max),
        )


def cancel_on_retry(
    conn: sqlite3.Connection,
    key: tuple[str, str, str, int],
    uncount: int,
    now: int,
    retention: Retention,
) -> bool:
    """End a running job (``key``: namespace, queue, id, token) as cancelled instead of
    retrying it, if a cancel was requested while it ran."""
    row = conn.execute(
        "DELETE FROM taskq_jobs WHERE namespace = ? AND queue = ? AND job_id = ?"
        " AND state = 'running' AND token = ? AND cancel_requested RETURNING attempt",
        key,
    ).fetchone()
    if row is None:
        return False
    record = JobRecord(key[1], key[2], "cancelled", None, int(row[0]) - uncount)
    finish(conn, key[0], replace(record, finished_at_ms=now), retention)
    return True
