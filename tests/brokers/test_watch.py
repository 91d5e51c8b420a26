"""Contract: watch() wakes a worker when work is enqueued, and stops when told."""

from __future__ import annotations

import threading
from typing import Any

from .brokerkit import item


class Wakes:
    """A wake callback that remembers the delays it was given."""

    def __init__(self) -> None:
        self.delays: list[int] = []
        self.event = threading.Event()

    def __call__(self, delay_ms: int) -> None:
        self.delays.append(delay_ms)
        self.event.set()


def test_watch_wakes_on_enqueue(broker: Any) -> None:
    wakes = Wakes()
    stop = broker.watch(["other", "q"], wakes)
    try:
        broker.enqueue([item("a")])
        assert wakes.event.wait(1.0), "no wake-up within 1 s of an enqueue"
        assert wakes.delays[-1] == 0
    finally:
        stop()


def test_watch_tells_how_long_until_the_job_is_due(broker: Any) -> None:
    wakes = Wakes()
    stop = broker.watch(["q"], wakes)
    try:
        broker.enqueue([item("a", delay_ms=5_000)])
        assert wakes.event.wait(1.0), "no wake-up within 1 s of an enqueue"
        assert 3_000 < wakes.delays[-1] <= 5_001  # a delay counts from the next ms
    finally:
        stop()


def test_watch_stops(broker: Any) -> None:
    wakes = Wakes()
    stop = broker.watch(["q"], wakes)
    stop()
    broker.enqueue([item("a")])
    assert not wakes.event.wait(0.3)


def test_two_watchers_both_wake(broker: Any) -> None:
    first, second = Wakes(), Wakes()
    stops = [broker.watch(["q"], first), broker.watch(["q"], second)]
    try:
        broker.enqueue([item("a")])
        assert first.event.wait(1.0) and second.event.wait(1.0)
    finally:
        for stop in stops:
            stop()
