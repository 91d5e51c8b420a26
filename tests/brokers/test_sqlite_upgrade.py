"""A SQLite file written by schema version 1 is upgraded in place, keeping its jobs."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from taskq.brokers import Retention
from taskq.brokers.base import CANCEL_REQUESTED, Ack
from taskq.brokers.sqlite import SQLiteBroker
from taskq.brokers.sqlite_schema import APPLICATION_ID, SCHEMA, SCHEMA_VERSION


def version_1_file(path: Path, *job_ids: str) -> None:
    """A file as taskq's schema version 1 left it (WAL), with jobs waiting in queue ``q`` of
    namespace ``ns``, due in the order given."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        for statement in SCHEMA:  # version 1 is SCHEMA without the migrations
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 1")
        for due, job_id in enumerate(job_ids):
            conn.execute(
                "INSERT INTO taskq_jobs (namespace, queue, job_id, state, body, due_ms)"
                " VALUES ('ns', 'q', ?, 'waiting', x'00', ?)",
                (job_id, due),
            )


def test_a_version_1_file_is_upgraded_and_keeps_its_jobs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    version_1_file(path, "old", "b")
    broker = SQLiteBroker(f"sqlite:///{path}", "ns", Retention())
    try:
        old, other = broker.claim(["q"], 2, 30_000, "w").jobs
        assert (old.job_id, other.job_id) == ("old", "b")
        assert broker.cancel("q", "b") == "requested"
        assert broker.extend([other.lease], 30_000) == [CANCEL_REQUESTED]
        assert broker.ack([Ack(old.lease)]) == [True]
        assert broker.get("q", "old").state == "succeeded"
        assert broker.rates("q", 1)[0].succeeded == 1
    finally:
        broker.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
