"""Floors: the same work done with the bare storage client, no framework, measured in the run."""

from __future__ import annotations

import heapq
import os
import sqlite3
import time
import tracemalloc
from collections.abc import Callable
from typing import Protocol

from .common import Settings


def noop() -> None:
    """The function the pop-loop floor calls for every item."""


def _rate(n: int, started: float) -> float:
    return n / (time.perf_counter() - started)


class Floor(Protocol):
    """Raw-storage counterparts of enqueueing, claiming and storing jobs."""

    one_by_one_name: str
    bulk_name: str
    pop_name: str
    bytes_name: str

    def add_one_by_one(self, n: int) -> float: ...

    def add_bulk(self, n: int) -> float: ...

    def pop_loop(self, n: int) -> float: ...

    def bytes_per_item(self, n: int, size: int) -> float: ...

    def close(self) -> None: ...


class RedisFloor:
    """redis-py against the same server: ZADD, pipelined ZADD, ZPOPMIN, MEMORY USAGE."""

    one_by_one_name = "raw ZADD loop, 1 call/item"
    bulk_name = "raw pipelined ZADD"
    pop_name = "raw ZPOPMIN loop + noop()"
    bytes_name = "raw ZADD member = 20 B arg"

    def __init__(self, settings: Settings) -> None:
        import redis

        self.client = redis.Redis.from_url(settings.url)
        self.key = f"{settings.run_id}-floor:zset"

    def add_one_by_one(self, n: int) -> float:
        client, key = self.client, self.key
        started = time.perf_counter()
        for i in range(n):
            client.zadd(key, {f"job-{i}": i})
        rate = _rate(n, started)
        client.unlink(key)
        return rate

    def add_bulk(self, n: int) -> float:
        client, key = self.client, self.key
        started = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for i in range(n):
            pipe.zadd(key, {f"job-{i}": i})
        pipe.execute()
        rate = _rate(n, started)
        client.unlink(key)
        return rate

    def pop_loop(self, n: int) -> float:
        client, key = self.client, self.key
        client.zadd(key, {f"job-{i}": i for i in range(n)})
        started = time.perf_counter()
        while client.zpopmin(key):
            noop()
        return _rate(n, started)

    def bytes_per_item(self, n: int, size: int) -> float:
        client, key = self.client, self.key
        client.zadd(key, {f"{i:0{size}d}": i for i in range(n)})
        used = int(client.memory_usage(key, samples=0) or 0)
        client.unlink(key)
        return used / n

    def close(self) -> None:
        self.client.unlink(self.key)
        self.client.close()


class SQLiteFloor:
    """sqlite3 on a file beside the broker's, WAL mode like taskq's: INSERT, DELETE, page count."""

    one_by_one_name = "raw INSERT+COMMIT per item"
    bulk_name = "raw executemany, 1 txn"
    pop_name = "raw SELECT+DELETE txn + noop()"
    bytes_name = "raw row (id, due, 20 B arg)"

    def __init__(self, settings: Settings) -> None:
        self.path = f"{settings.sqlite_path}.{settings.run_id}.floor"
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS q (id TEXT PRIMARY KEY, due INTEGER, body BLOB)"
        )
        self.conn.execute("CREATE INDEX IF NOT EXISTS q_due ON q (due)")

    def _tx(self, fn: Callable[[], object]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        fn()
        self.conn.execute("COMMIT")

    def add_one_by_one(self, n: int) -> float:
        sql = "INSERT INTO q VALUES (?, ?, ?)"
        conn = self.conn
        started = time.perf_counter()
        for i in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(sql, (f"job-{i}", i, b"x"))
            conn.execute("COMMIT")
        rate = _rate(n, started)
        self.conn.execute("DELETE FROM q")
        return rate

    def add_bulk(self, n: int) -> float:
        rows = [(f"job-{i}", i, b"x") for i in range(n)]
        started = time.perf_counter()
        self._tx(lambda: self.conn.executemany("INSERT INTO q VALUES (?, ?, ?)", rows))
        rate = _rate(n, started)
        self.conn.execute("DELETE FROM q")
        return rate

    def pop_loop(self, n: int) -> float:
        rows = [(f"job-{i}", i, b"x") for i in range(n)]
        self._tx(lambda: self.conn.executemany("INSERT INTO q VALUES (?, ?, ?)", rows))
        conn = self.conn
        started = time.perf_counter()
        while True:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT id FROM q ORDER BY due LIMIT 1").fetchone()
            if row is None:
                conn.execute("COMMIT")
                break
            conn.execute("DELETE FROM q WHERE id = ?", row)
            conn.execute("COMMIT")
            noop()
        return _rate(n, started)

    def _used_bytes(self) -> int:
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        free = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * self.conn.execute("PRAGMA page_size").fetchone()[0])

    def bytes_per_item(self, n: int, size: int) -> float:
        before = self._used_bytes()
        rows = [(f"{i:032x}", i, b"x" * size) for i in range(n)]
        self._tx(lambda: self.conn.executemany("INSERT INTO q VALUES (?, ?, ?)", rows))
        used = self._used_bytes() - before
        self.conn.execute("DELETE FROM q")
        return used / n

    def close(self) -> None:
        self.conn.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.remove(self.path + suffix)


class MemoryFloor:
    """A plain heap in this process: heappush, heapify, heappop, tracemalloc."""

    one_by_one_name = "heapq.heappush per item"
    bulk_name = "list + heapq.heapify"
    pop_name = "heapq.heappop loop + noop()"
    bytes_name = "heap entry (due, 20 B arg)"

    def __init__(self, settings: Settings) -> None:
        self.heap: list[tuple[int, str]] = []

    def add_one_by_one(self, n: int) -> float:
        heap: list[tuple[int, str]] = []
        started = time.perf_counter()
        for i in range(n):
            heapq.heappush(heap, (i, f"job-{i}"))
        return _rate(n, started)

    def add_bulk(self, n: int) -> float:
        started = time.perf_counter()
        heap = [(i, f"job-{i}") for i in range(n)]
        heapq.heapify(heap)
        return _rate(n, started)

    def pop_loop(self, n: int) -> float:
        heap = [(i, f"job-{i}") for i in range(n)]
        started = time.perf_counter()
        while heap:
            heapq.heappop(heap)
            noop()
        return _rate(n, started)

    def bytes_per_item(self, n: int, size: int) -> float:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        heap = [(i, f"{i:0{size}d}") for i in range(n)]
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        del heap
        return used / n

    def close(self) -> None:
        pass


def floor_for(settings: Settings) -> Floor:
    """The floor of the run's broker kind."""
    kinds: dict[str, Callable[[Settings], Floor]] = {
        "redis": RedisFloor,
        "sqlite": SQLiteFloor,
        "memory": MemoryFloor,
    }
    return kinds[settings.kind](settings)
