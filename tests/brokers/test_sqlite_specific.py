"""What only the SQLite broker promises: file checks, locking, one file shared by processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import pytest

from taskq.brokers import Retention, open_broker, sqlite_db
from taskq.brokers.sqlite import SQLiteBroker
from taskq.errors import BrokerUnavailable, ConfigError

from .brokerkit import item


def _url(path: Path, query: str = "") -> str:
    return f"sqlite:///{path}{query}"  # path is absolute, so this is the four-slash form


def _broker(path: Path, query: str = "") -> SQLiteBroker:
    return SQLiteBroker(_url(path, query), "ns", Retention())


def test_path_in_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "taskq.db"
    with pytest.raises(ConfigError, match=r"missing/taskq\.db"):
        _broker(path)


def test_path_under_a_regular_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"file/taskq\.db"):
        _broker(tmp_path / "file" / "taskq.db")


def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are not the bytes of a SQLite database\n" * 100)
    with pytest.raises(ConfigError, match=r"notes\.txt") as raised:
        _broker(path)
    assert "not a database" in str(raised.value)
    assert path.read_bytes().startswith(b"these are not")  # left as it was


def test_a_database_of_another_program_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    with pytest.raises(ConfigError, match=r"other\.db.*not a taskq one"):
        _broker(path)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:  # not even switched to WAL
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_a_newer_schema_version_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "taskq.db"
    _broker(path).close()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(f"PRAGMA user_version = {sqlite_db.SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError, match=r"taskq\.db.*schema version 3, newer"):
        _broker(path)


@pytest.mark.parametrize(
    "url",
    ["sqlite://taskq.db", "sqlite:///", "sqlite:///:memory:", "sqlite:////x.db?journal=off"],
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match=r"bad SQLite URL"):
        SQLiteBroker(url, "ns", Retention())


def test_relative_and_absolute_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    relative = open_broker("sqlite:///sub/rel.db", "ns")
    relative.enqueue([item("a")])
    relative.close()
    assert (tmp_path / "sub" / "rel.db").exists()
    absolute = open_broker(f"sqlite:////{str(tmp_path).lstrip('/')}/sub/rel.db", "ns")
    assert isinstance(absolute, SQLiteBroker)
    assert absolute.get("q", "a") is not None
    absolute.close()


def test_the_file_is_in_wal_mode_and_keeps_jobs_across_opens(tmp_path: Path) -> None:
    path = tmp_path / "taskq.db"
    first = _broker(path)
    first.enqueue([item("a")])
    first.close()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    second = _broker(path)
    assert second.get("q", "a") is not None
    second.close()


@pytest.mark.parametrize("query", ["", "?busy_timeout=50"])
def test_a_held_write_lock_makes_enqueue_wait_not_fail(tmp_path: Path, query: str) -> None:
    path = tmp_path / "taskq.db"
    broker = _broker(path, query)
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.0, holder.execute, ["COMMIT"])
    release.start()
    started = time.monotonic()
    try:
        assert broker.enqueue([item("a")]) == [True]
        assert time.monotonic() - started >= 0.9
    finally:
        release.join()
        holder.close()
        broker.close()


def test_a_lock_held_too_long_is_broker_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "taskq.db"
    broker = _broker(path, "?busy_timeout=20")
    monkeypatch.setattr(sqlite_db, "LOCKED_GIVE_UP_S", 0.3)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BrokerUnavailable, match=r"taskq\.db.*locked"):
            broker.enqueue([item("a")])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert broker.enqueue([item("a")]) == [True]
    broker.close()


_PRODUCE_AND_CLAIM = """
import sys
from taskq.brokers import Retention
from taskq.brokers.base import Ack, EnqueueItem
from taskq.brokers.sqlite import SQLiteBroker

url, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
broker = SQLiteBroker(url, "ns", Retention())
claimed = []

def claim():
    batch = broker.claim(["q"], 10, 60_000, name)
    assert broker.ack([Ack(job.lease) for job in batch.jobs]) == [True] * len(batch.jobs)
    claimed.extend(job.job_id for job in batch.jobs)
    return batch

for start in range(0, count, 50):
    items = [EnqueueItem("q", f"{name}-{n}", b"x") for n in range(start, start + 50)]
    assert broker.enqueue(items) == [True] * 50
    claim()
while True:
    batch = claim()
    if not batch.jobs and batch.next_due_ms is None:
        break
broker.close()
print("\\n".join(claimed))
"""


def test_two_processes_share_one_file_and_claim_disjoint_jobs(tmp_path: Path) -> None:
    url = _url(tmp_path / "shared.db")  # created by whichever process gets there first
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PRODUCE_AND_CLAIM, url, name, "1000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("p1", "p2")
    ]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    claimed = [line for out, _ in outputs for line in out.split()]
    expected = {f"{name}-{n}" for name in ("p1", "p2") for n in range(1000)}
    assert len(claimed) == len(expected) and set(claimed) == expected
    assert all(out.split() for out, _ in outputs), "one process claimed nothing"


def test_another_process_enqueueing_wakes_a_watcher(tmp_path: Path) -> None:
    path = tmp_path / "taskq.db"
    broker = _broker(path)
    woken = threading.Event()
    stop = broker.watch(["q"], lambda delay_ms: woken.set())
    script = (
        "import sys; from taskq.brokers import Retention; "
        "from taskq.brokers.base import EnqueueItem; "
        "from taskq.brokers.sqlite import SQLiteBroker; "
        "SQLiteBroker(sys.argv[1], 'ns', Retention()).enqueue([EnqueueItem('q', 'a', b'x')])"
    )
    try:
        subprocess.run([sys.executable, "-c", script, _url(path)], check=True, timeout=30)
        assert woken.wait(1.0)
    finally:
        stop()
        broker.close()
