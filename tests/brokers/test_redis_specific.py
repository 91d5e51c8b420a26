"""What only the Redis broker promises beyond the contract suite."""

from __future__ import annotations

import enum
import gc
import os
import threading

import pytest
import redis
from redis._parsers.encoders import Encoder
from redis.connection import PythonRespSerializer

from taskq import App
from taskq.brokers.redis import RedisBroker
from taskq.brokers.redis_resp import CommandPacker

from .brokerkit import LONG_LEASE_MS, item


def test_the_next_due_time_comes_finer_than_a_millisecond(redis_app: App) -> None:
    """A worker sleeps until ``next_due_ms``: in whole ms it would oversleep by up to 1 ms."""
    broker = redis_app.broker
    assert isinstance(broker, RedisBroker)
    broker.enqueue([item("a", delay_ms=10_000)])
    waits = [broker.claim(["q"], 10, LONG_LEASE_MS, "w").next_due_ms for _ in range(5)]
    assert all(w is not None and 9_000 < w <= 10_001 for w in waits), waits
    # five whole numbers in a row would come one time in 10^15 from a clock counting µs
    assert any(w is not None and w % 1 for w in waits), waits


def test_each_thread_keeps_a_connection_of_its_own(redis_app: App) -> None:
    """No pool checkout per command: a thread's commands all go down one connection, which no
    other thread shares."""
    broker = redis_app.broker
    assert isinstance(broker, RedisBroker)
    ids: dict[str, set[int]] = {}

    def note(name: str) -> None:
        ids[name] = {int(broker.client.client_id()) for _ in range(3)}

    note("main")
    thread = threading.Thread(target=note, args=("other",))
    thread.start()
    thread.join()
    assert len(ids["main"]) == 1 and len(ids["other"]) == 1 and ids["main"] != ids["other"]


def test_a_thread_that_ends_gives_its_connection_back(redis_app: App) -> None:
    """A producer starting a thread per request must not leave a connection behind each time."""
    broker = redis_app.broker
    assert isinstance(broker, RedisBroker)
    broker.client.ping()
    for _ in range(20):
        thread = threading.Thread(target=lambda: broker.client.ping())
        thread.start()
        thread.join()
    gc.collect()
    pool = broker.client.connection_pool
    assert len(pool._in_use_connections) == 1  # type: ignore[attr-defined]  # the main thread's
    assert len(pool._available_connections) <= 1  # type: ignore[attr-defined]  # reused


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_process_does_not_share_the_parents_connection(redis_app: App) -> None:
    """A child that used the parent's socket would interleave replies with it."""
    broker = redis_app.broker
    assert isinstance(broker, RedisBroker)
    parent_id = int(broker.client.client_id())
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connection's id, or 0 if anything failed
        try:
            child_id = int(broker.client.client_id())
        except BaseException:
            child_id = 0
        os.write(write, str(child_id).encode())
        os._exit(0)
    os.close(write)
    child_id = int(os.read(read, 64) or b"0")
    os.close(read)
    os.waitpid(pid, 0)
    assert child_id not in (0, parent_id)
    assert int(broker.client.client_id()) == parent_id  # the parent's connection is intact


class Color(str, enum.Enum):
    RED = "red"


class Number(int):
    pass


class Bytes(bytes):
    pass


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    """The lean packer writes what redis-py's own packer writes, and refuses what it refuses."""
    reference = PythonRespSerializer(6000, Encoder("utf-8", "strict", False).encode)
    ours = CommandPacker()
    commands = [
        ("EVALSHA", "abc", 2, "k1", b"k2", 5, -30_000, "w:1"),
        ("CONFIG GET", "maxmemory-policy"),  # a two-word command name
        (b"CLIENT ID",),
        ("SET", b"\x00" * 10_000, 1.5, "é", bytearray(b"ab"), memoryview(b"cd"), 2**70),
        ("SET", Color.RED, Number(7), Bytes(b"v")),  # subclasses take the general path
    ]
    for command in commands:
        assert b"".join(ours.pack(*command)) == b"".join(reference.pack(*command)), command
    for bad in (True, None, object()):
        with pytest.raises(redis.DataError):
            ours.pack("SET", "k", bad)
