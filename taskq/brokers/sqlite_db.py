"""One taskq SQLite file: its URL, the SQLite it needs, its schema, connections and retries."""

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
from .sqlite_schema import APPLICATION_ID, MIGRATIONS, SCHEMA, SCHEMA_VERSION

T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT_MS = 5_000
LOCKED_GIVE_UP_S = 60.0  # beyond busy_timeout, how long a locked file is retried before failing
# RETURNING came in 3.35.0; the other features used are older (FILTER 3.30, upsert 3.24)
MIN_SQLITE_VERSION = (3, 35, 0)
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


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


def sqlite_version() -> tuple[int, int, int]:
    """The version of the SQLite library Python's ``sqlite3`` module runs on."""
    return sqlite3.sqlite_version_info


def require_sqlite_version() -> None:
    """Raise :class:`ConfigError` if the SQLite library lacks a feature the broker's SQL uses."""
    found = sqlite_version()
    if found < MIN_SQLITE_VERSION:
        raise ConfigError(
            f"the SQLite broker needs SQLite {_dotted(MIN_SQLITE_VERSION)} or newer (for"
            f" RETURNING), but Python's sqlite3 module runs on SQLite {_dotted(found)}: use a"
            " Python built with a newer SQLite, or another broker"
        )


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


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
        # whether the file was found to hold the current schema; until then every call checks
        self._ready = False
        require_sqlite_version()
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
                if not self._ready:
                    self._prepare()
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

    def open_now(self) -> None:
        """Finish an open that found the file locked, in one try (within ``busy_timeout``).

        Raises :class:`BrokerUnavailable` if it is locked still, and :class:`ConfigError` if it
        is no file taskq can use.
        """
        if self._ready:
            return
        try:
            self._prepare()
        except sqlite3.Error as exc:
            raise BrokerUnavailable(
                f"SQLite database {self.path!r} is locked by another connection ({exc})"
            ) from exc

    def _open(self) -> None:
        try:
            self.open_now()
        except BrokerUnavailable:
            pass  # not a setting to fix: each call tries the open again, as it retries a lock
        except ConfigError:
            self.close()
            raise

    def _prepare(self) -> None:
        """Check the file, then create or upgrade its schema if need be (under the write lock).

        A file already current is only read, so that it opens while another process writes.
        Raises ``sqlite3.Error`` only for a lock; any other failure is a :class:`ConfigError`.
        """
        try:
            conn = self.connection()
            # checked before anything is written to a file that may not be ours
            current = self._check(conn) == SCHEMA_VERSION
            if not (current and _journal_mode(conn) == "wal"):
                if (mode := _use_wal(conn)) != "wal":
                    raise ConfigError(
                        f"cannot use SQLite database {self.path!r}: it cannot use WAL journal"
                        f" mode (it is in {mode!r} mode)"
                    )
                _transaction(conn, self._check_and_create)
            elif not os.access(self.path, os.W_OK):  # SQLite would open it read-only
                raise ConfigError(f"cannot use SQLite database {self.path!r}: it is read-only")
        except sqlite3.Error as exc:
            if is_locked(exc):
                raise
            hint = " (does its directory exist, and is it writable?)" if _unopenable(exc) else ""
            raise ConfigError(f"cannot use SQLite database {self.path!r}: {exc}{hint}") from None
        self._ready = True

    def _check(self, conn: sqlite3.Connection) -> int:
        """The taskq schema version the file holds (0: an empty file); raises if it holds
        anything else."""
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
        if app_id == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"SQLite database {self.path!r} has taskq schema version {version}, newer "
                    f"than this taskq's {SCHEMA_VERSION}: upgrade taskq"
                )
            return max(version, 1)
        if app_id == 0 and version == 0 and tables == 0:
            return 0
        raise ConfigError(f"{self.path!r} is a SQLite database, but not a taskq one")

    def _check_and_create(self, conn: sqlite3.Connection) -> None:
        # Checked again under the write lock: another process may have created it meanwhile.
        version = self._check(conn)
        if version == 0:
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for target in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
        if version != SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _journal_mode(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def _use_wal(conn: sqlite3.Connection) -> str:
    """Switch the file to WAL mode; returns the mode it is in after (``"wal"`` unless refused)."""
    return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()


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
