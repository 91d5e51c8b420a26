"""One taskq SQLite file: its URL, its schema check, per-thread connections and locked-retry."""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qsl, unquote

from ..errors import BrokerError, BrokerUnavailable, ConfigError

T = TypeVar("T")

SCHEMA_VERSION = 2
APPLICATION_ID = 0x7461_736B  # "task": marks a file as taskq's, unlike any other SQLite file
DEFAULT_BUSY_TIMEOUT_MS = 5_000
LOCKED_GIVE_UP_S = 60.0  # beyond busy_timeout, how long a locked file is retried before failing
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6

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


def parse_url(url: str) -> tuple[str, int]:
    """The file path and busy timeout (ms) of ``sqlite:///relative.db`` or ``sqlite:////abs.db``.

    The one query parameter understood is ``busy_timeout`` (ms), e.g. ``?busy_timeout=10000``.
    """
    rest = url.split("://", 1)[1] if "://" in url else ""
    rest, _, query = rest.partition("?")
    path = unquote(rest[1:])
    if not rest.startswith("/") or not path or path == ":memory:":
        raise ConfigError(
            f"bad SQLite URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    busy_timeout_ms = DEFAULT_BUSY_TIMEOUT_MS
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key != "busy_timeout" or not value.isdigit():
            raise ConfigError(
                f"bad SQLite URL {url!r}: the only parameter is busy_timeout=<milliseconds>"
            )
        busy_timeout_ms = int(value)
    return path, busy_timeout_ms


def is_locked(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says another connection holds a lock (worth retrying)."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


class Database:
    """A taskq SQLite file shared by threads and processes; each thread has its own connection."""

    def __init__(self, path: str, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        # Absolute, so that a later chdir cannot point new connections at another file.
        self.path = os.path.abspath(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._lock = threading.Lock()
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        self._pid = os.getpid()
        self._open()

    def connect(self) -> sqlite3.Connection:
        """A new connection in autocommit mode: transactions are begun explicitly."""
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout_ms / 1000,  # SQLite's busy_timeout
            isolation_level=None,
            check_same_thread=False,  # so that close() may close a finished thread's connection
        )
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, made on first use."""
        thread = threading.current_thread()
        with self._lock:
            if os.getpid() != self._pid:  # a forked child must not use its parent's connections
                self._connections.clear()
                self._pid = os.getpid()
            conn = self._connections.get(thread)
            if conn is None:
                for gone in [t for t in self._connections if not t.is_alive()]:
                    self._connections.pop(gone).close()
                conn = self._connections[thread] = self.connect()
            return conn

    def close(self) -> None:
        """Drop every thread's connection; a later call opens new ones.

        Only this thread's connection and those of finished threads are closed here: closing a
        connection another thread is using can crash the sqlite3 module. The others close when
        their last reference goes, which is never while a call on them is running.
        """
        with self._lock:
            connections = list(self._connections.items())
            self._connections.clear()
        this = threading.current_thread()
        for thread, conn in connections:
            if thread is this or not thread.is_alive():
                conn.close()

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` outside any explicit transaction, retried while the file is locked."""
        return self._retrying(fn)

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` in one ``BEGIN IMMEDIATE`` transaction, retried while locked.

        ``fn`` runs after the write lock is held, so the times it reads are the times it writes.
        """
        return self._retrying(lambda conn: _transaction(conn, fn))

    def _retrying(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        give_up = time.monotonic() + LOCKED_GIVE_UP_S
        delay = 0.005
        while True:
            try:
                return fn(self.connection())
            except sqlite3.Error as exc:
                if not is_locked(exc):
                    raise BrokerError(f"SQLite database {self.path!r}: {exc}") from exc
                if time.monotonic() > give_up:
                    raise BrokerUnavailable(
                        f"SQLite database {self.path!r} stayed locked for {LOCKED_GIVE_UP_S:g} s"
                    ) from exc
            # Jitter keeps processes that collided from colliding again in step.
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)

    def _open(self) -> None:
        try:
            self.read(self._check)  # before anything is written to a file that may not be ours
            self.read(_use_wal)
            self.write(self._check_and_create)
        except BrokerError as exc:
            self.close()
            cause = exc.__cause__ or exc
            hint = " (does its directory exist, and is it writable?)" if _unopenable(cause) else ""
            raise ConfigError(f"cannot use SQLite database {self.path!r}: {cause}{hint}") from None
        except ConfigError:
            self.close()
            raise

    def _check(self, conn: sqlite3.Connection) -> bool:
        """Whether the file already holds a taskq schema; raises if it holds anything else."""
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        if app_id == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"SQLite database {self.path!r} has taskq schema version {version}, newer "
                    f"than this taskq's {SCHEMA_VERSION}: upgrade taskq"
                )
            return True
        if app_id == 0 and version == 0 and tables == 0:
            return False
        raise ConfigError(f"{self.path!r} is a SQLite database, but not a taskq one")

    def _check_and_create(self, conn: sqlite3.Connection) -> None:
        # Checked again under the write lock: another process may have created it meanwhile.
        version = 0
        if not self._check(conn):
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            version = 1
        else:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        for target in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
        # Written even when unchanged, so that a read-only file fails here and not on first use.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _use_wal(conn: sqlite3.Connection) -> None:
    mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
    if mode.lower() != "wal":
        raise BrokerError(f"the file cannot use WAL journal mode (it is in {mode!r} mode)")


def _unopenable(exc: BaseException) -> bool:
    return "unable to open" in str(exc) or "readonly" in str(exc)


def _transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    if conn.in_transaction:  # left open by a ROLLBACK that failed; never build on its writes
        conn.execute("ROLLBACK")
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result
