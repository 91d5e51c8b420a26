"""The tables of a taskq SQLite file and the migrations that bring an older file up to date."""

from __future__ import annotations

SCHEMA_VERSION = 2
APPLICATION_ID = 0x7461_736B  # "task": marks a file as taskq's, unlike any other SQLite file

SCHEMA = (
    """CREATE TABLE taskq_jobs (
        namespace TEXT NOT NULL,
        queue TEXT NOT NULL,
        job_id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('waiting', 'running', 'dead')),
        body BLOB NOT NULL,
        due_ms INTEGER NOT NULL,
        lease_until_ms INTEGER,
        dead_at_ms INTEGER,
        attempt INTEGER NOT NULL DEFAULT 0,
        crashes INTEGER NOT NULL DEFAULT 0,
        token INTEGER NOT NULL DEFAULT 0,
        worker TEXT,
        failure BLOB,
        PRIMARY KEY (namespace, queue, job_id))""",
    """CREATE INDEX taskq_jobs_waiting ON taskq_jobs (namespace, queue, due_ms)
        WHERE state = 'waiting'""",
    """CREATE INDEX taskq_jobs_running ON taskq_jobs (namespace, queue, lease_until_ms)
        WHERE state = 'running'""",
    """CREATE INDEX taskq_jobs_dead ON taskq_jobs (namespace, queue, dead_at_ms)
        WHERE state = 'dead'""",
    # One row per queue ever enqueued to. ``enqueued`` changes whenever new work arrives, which
    # watchers poll; ``token_seq`` outlives every job so that a reused job id gets fresh tokens.
    """CREATE TABLE taskq_queues (
        namespace TEXT NOT NULL,
        queue TEXT NOT NULL,
        enqueued INTEGER NOT NULL DEFAULT 0,
        token_seq INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (namespace, queue))""",
    """CREATE TABLE taskq_results (
        namespace TEXT NOT NULL,
        queue TEXT NOT NULL,
        job_id TEXT NOT NULL,
        result BLOB NOT NULL,
        expires_ms INTEGER NOT NULL,
        PRIMARY KEY (namespace, queue, job_id))""",
    "CREATE INDEX taskq_results_expiry ON taskq_results (namespace, expires_ms)",
    """CREATE TABLE taskq_workers (
        namespace TEXT NOT NULL,
        worker TEXT NOT NULL,
        info BLOB NOT NULL,
        seen_at_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        PRIMARY KEY (namespace, worker))""",
)

# Statements that bring a file from the version before each key to that version.
MIGRATIONS = {
    2: (
        "ALTER TABLE taskq_jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0",
        # succeeded and cancelled jobs, trimmed by count (seq) and age; see Retention
        """CREATE TABLE taskq_finished (
            namespace TEXT NOT NULL,
            queue TEXT NOT NULL,
            job_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('succeeded', 'cancelled')),
            finished_at_ms INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            worker TEXT,
            result_kept INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (namespace, queue, job_id))""",
        "CREATE INDEX taskq_finished_seq ON taskq_finished (namespace, queue, seq)",
        """CREATE TABLE taskq_stats (
            namespace TEXT NOT NULL,
            queue TEXT NOT NULL,
            minute INTEGER NOT NULL,
            succeeded INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (namespace, queue, minute))""",
    ),
}
