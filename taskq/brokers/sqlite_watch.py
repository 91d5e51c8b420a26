"""Wake-ups for the SQLite broker: a thread that notices work other connections commit."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence

from .sqlite_db import Database

log = logging.getLogger(__name__)

POLL_S = 0.005  # PRAGMA data_version reads no table, so polling this often costs little


class Watcher:
    """Calls ``wake(delay_ms)`` from its own thread when work is added to one of ``queues``.

    ``PRAGMA data_version`` changes when any other connection commits; only then are the
    queues' ``enqueued`` counters read, and a change there means new work.
    """

    def __init__(
        self,
        db: Database,
        namespace: str,
        queues: Sequence[str],
        wake: Callable[[int], None],
        now: Callable[[], int],
    ) -> None:
        self._conn = db.connect()
        self._wake = wake
        self._now = now
        marks = ", ".join("?" * len(queues))
        self._sql = (
            "SELECT (SELECT coalesce(sum(enqueued), 0) FROM taskq_queues"
            f"  WHERE namespace = ? AND queue IN ({marks})),"
            " (SELECT min(due_ms) FROM taskq_jobs"
            f"  WHERE namespace = ? AND queue IN ({marks}) AND state = 'waiting')"
        )
        self._params = (namespace, *queues, namespace, *queues)
        self._stopping = threading.Event()
        self._version: int | None = None
        self._enqueued = 0
        # The baseline is read before watch() returns, so no later enqueue goes unseen. A file
        # locked (or not created yet) since the broker was opened has it read by the thread.
        with contextlib.suppress(sqlite3.Error):
            self._read_baseline()
        self._thread = threading.Thread(target=self._run, name="taskq-sqlite-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (unless called from a wake-up on that thread)."""
        self._stopping.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _data_version(self) -> int:
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def _run(self) -> None:
        try:
            while not self._stopping.wait(POLL_S):
                try:
                    self._poll()
                except sqlite3.Error:
                    pass  # e.g. locked while another process recovers the WAL: poll again
                except Exception:  # a failing wake-up must not end the watching
                    log.exception("wake-up callback failed")
        finally:
            self._conn.close()

    def _read_baseline(self) -> None:
        version = self._data_version()
        self._enqueued, _ = self._conn.execute(self._sql, self._params).fetchone()
        self._version = version

    def _poll(self) -> None:
        if self._version is None:
            self._read_baseline()
            self._wake(0)  # work enqueued before the baseline went unseen: claim now, in case
            return
        version = self._data_version()
        if version == self._version:
            return
        self._version = version
        enqueued, first_due = self._conn.execute(self._sql, self._params).fetchone()
        if enqueued == self._enqueued:
            return
        self._enqueued = enqueued
        if first_due is not None:  # else another worker claimed it already
            self._wake(max(0, int(first_due) - self._now()))


class FinishWaiter:
    """Waits for one job to leave the waiting and running states (to succeed, be cancelled or
    die): on its own connection, it reads the job's row only when ``PRAGMA data_version`` says
    another connection committed."""

    def __init__(self, db: Database, namespace: str, queue: str, job_id: str) -> None:
        self._conn = db.connect()
        self._key = (namespace, queue, job_id)
        try:
            self._version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:  # locked: no version to start from, so the first look reads the row
            self._version = -1

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                if self._ended():
                    return True
            except sqlite3.Error:
                pass  # locked while another process recovers the WAL: look again
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(POLL_S, left))

    def _ended(self) -> bool:
        version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self._version:
            return False
        self._version = version
        row = self._conn.execute(
            "SELECT state FROM taskq_jobs WHERE namespace = ? AND queue = ? AND job_id = ?",
            self._key,
        ).fetchone()
        return row is None or row[0] == "dead"

    def close(self) -> None:
        self._conn.close()
