"""Opening a SQLite file: what takes the write lock, what a lock met at open means, and which
SQLite library and filesystem can hold the file."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from taskq import App, Task
from taskq.brokers import Retention, sqlite_db, sqlite_fs
from taskq.brokers.sqlite import SQLiteBroker
from taskq.brokers.sqlite_schema import SCHEMA_VERSION
from taskq.errors import BrokerUnavailable, ConfigError
from taskq.worker import Worker, WorkerOptions

from .brokerkit import item
from .test_sqlite_upgrade import version_1_file

FAST_LOCK = "?busy_timeout=20"  # with LOCKED_GIVE_UP_S patched down, a lock fails in well under 1 s

# Runs in a process of its own: the statements, then "held" on stdout; a line on stdin ends it.
_HOLD = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
for statement in sys.argv[2:]:
    conn.execute(statement)
print("held", flush=True)
sys.stdin.readline()
"""

WRITE_LOCK = ("BEGIN IMMEDIATE",)
EXCLUSIVE_TRANSACTION = ("BEGIN EXCLUSIVE",)
# in WAL mode only this keeps readers out too: the lock is held past the transaction
EXCLUSIVE_FILE = ("PRAGMA locking_mode = EXCLUSIVE", "BEGIN EXCLUSIVE", "COMMIT")


@contextmanager
def held(path: Path, statements: tuple[str, ...]) -> Iterator[None]:
    """Another process holds a lock on ``path`` (taken by ``statements``) inside the block."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path), *statements],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "held"
        yield
    finally:
        proc.stdin.close()  # its readline() returns: the process ends, and its lock with it
        assert proc.wait(10) == 0


@pytest.fixture
def fast_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A locked file is given up on after 0.3 s of retries instead of a minute."""
    monkeypatch.setattr(sqlite_db, "LOCKED_GIVE_UP_S", 0.3)


def _broker(path: Path, query: str = "") -> SQLiteBroker:
    return SQLiteBroker(f"sqlite:///{path}{query}", "ns", Retention())


def _user_version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


@pytest.mark.parametrize(
    "lock", [WRITE_LOCK, EXCLUSIVE_TRANSACTION], ids=["immediate", "exclusive"]
)
def test_a_current_file_opens_while_another_process_writes(
    tmp_path: Path, fast_lock: None, lock: tuple[str, ...]
) -> None:
    path = tmp_path / "taskq.db"
    first = _broker(path)
    first.enqueue([item("a")])
    first.close()
    with held(path, lock):
        broker = _broker(path, FAST_LOCK)  # reads only: no write lock needed
        try:
            assert broker.get("q", "a") is not None
            assert broker.warnings() == []
        finally:
            broker.close()
    assert _user_version(path) == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("schema", "lock"),
    [("version 1", WRITE_LOCK), ("current", EXCLUSIVE_FILE)],
    ids=["upgrade-blocked-by-a-writer", "reads-blocked-by-an-exclusive-file-lock"],
)
def test_a_lock_at_open_is_broker_unavailable_and_the_next_call_opens_the_file(
    tmp_path: Path, fast_lock: None, schema: str, lock: tuple[str, ...]
) -> None:
    path = tmp_path / "taskq.db"
    if schema == "version 1":
        version_1_file(path, "old")
    else:
        _broker(path).close()
    with held(path, lock):
        broker = _broker(path, FAST_LOCK)  # not a ConfigError: nothing to fix in the settings
        with pytest.raises(BrokerUnavailable, match=r"taskq\.db.* is locked"):
            broker.warnings()
        with pytest.raises(BrokerUnavailable, match=r"taskq\.db.*stayed locked"):
            broker.enqueue([item("a")])
    try:
        assert broker.enqueue([item("a")]) == [True]
        assert broker.counts("q").due == (2 if schema == "version 1" else 1)
        assert broker.warnings() == []
    finally:
        broker.close()
    assert _user_version(path) == SCHEMA_VERSION


def test_the_cli_exits_1_for_a_locked_file_not_2(tmp_path: Path) -> None:
    path = tmp_path / "taskq.db"
    version_1_file(path, "old")
    (tmp_path / "tasks.py").write_text(
        f"from taskq import App\napp = App('sqlite:///{path}{FAST_LOCK}', env={{}})\n"
    )
    script = (
        "import sys; from taskq.brokers import sqlite_db; sqlite_db.LOCKED_GIVE_UP_S = 0.3; "
        "from taskq.cli.main import main; sys.exit(main())"
    )
    with held(path, WRITE_LOCK):
        info = subprocess.run(
            [sys.executable, "-c", script, "info", "tasks:app"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert info.returncode == 1, info.stderr
    assert "locked" in info.stderr and "cannot use" not in info.stderr


def test_a_worker_started_on_a_locked_file_keeps_trying_then_runs_the_job(
    tmp_path: Path, fast_lock: None, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'taskq.db'}{FAST_LOCK}"
    ran = threading.Event()

    def make_app() -> tuple[App, Task[[], None]]:
        app = App(url, namespace="ns", env={})

        @app.task
        def mark() -> None:
            ran.set()

        return app, mark

    producer, mark = make_app()
    mark.delay()
    producer.close()
    app, _ = make_app()
    options = WorkerOptions(burst=True, poll_interval=0.05, lease=5.0, grace=1.0)
    caplog.set_level(logging.INFO, logger="taskq")
    with held(tmp_path / "taskq.db", EXCLUSIVE_FILE):
        worker = Worker(app, options)  # not a ConfigError
        thread = threading.Thread(target=asyncio.run, args=(worker.run(),), daemon=True)
        thread.start()
        assert not ran.wait(1.5)  # it cannot claim while the file is locked...
        assert thread.is_alive()  # ...and does not give up
    thread.join(20)
    assert not thread.is_alive() and ran.is_set()
    app.close()
    said = caplog.text
    assert "is locked" in said and "the worker keeps trying" in said
    assert "broker unreachable" in said and "reachable again" in said


def test_an_old_sqlite_library_is_a_config_error_naming_both_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_db, "sqlite_version", lambda: (3, 34, 1))
    with pytest.raises(
        ConfigError, match=r"needs SQLite 3\.35\.0 or newer.*runs on SQLite 3\.34\.1"
    ):
        _broker(tmp_path / "taskq.db")
    assert not (tmp_path / "taskq.db").exists()  # checked before the file is touched
    monkeypatch.setattr(sqlite_db, "sqlite_version", lambda: (3, 35, 0))
    _broker(tmp_path / "taskq.db").close()


def test_a_file_on_a_network_filesystem_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Path(sqlite_fs.MOUNTINFO).exists():
        pytest.skip("no Linux mount table here")
    device = os.stat(tmp_path).st_dev
    here = f"{os.major(device)}:{os.minor(device)}"
    mountinfo = tmp_path / "mountinfo"
    monkeypatch.setattr(sqlite_fs, "MOUNTINFO", str(mountinfo))
    broker = _broker(tmp_path / "taskq.db")
    try:
        other = "22 1 0:4242 / /elsewhere rw,relatime - nfs4 server:/other rw\n"
        mountinfo.write_text(
            other + f"36 1 {here} / /srv rw,relatime shared:1 - ext4 /dev/vda rw\n"
        )
        assert broker.warnings() == []
        mountinfo.write_text(
            other + f"36 1 {here} / /srv rw shared:1 - nfs4 nas:/srv rw,vers=4.2\n"
        )
        [warning] = broker.warnings()
        assert "taskq.db" in warning and "network filesystem (nfs4)" in warning
    finally:
        broker.close()


def test_waiting_for_a_result_on_a_locked_file_waits_instead_of_raising(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'taskq.db'}{FAST_LOCK}"
    producer = App(url, namespace="ns", env={})

    @producer.task
    def noop() -> None: ...

    handle = noop.delay()
    producer.close()
    with held(tmp_path / "taskq.db", EXCLUSIVE_FILE):
        # a waiter made while no one may read the file waits; it does not raise
        waiter = App(url, namespace="ns", env={}).inspector.finishes("default", handle.id)
        try:
            assert waiter.wait(0.2) is False
        finally:
            waiter.close()
