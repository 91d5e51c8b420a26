"""A thread that turns Redis pub/sub wake-up messages into calls of a worker's wake function."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import redis

log = logging.getLogger("taskq.broker")


class Watcher:
    """Subscribes to wake channels on its own connection, resubscribing after connection loss."""

    def __init__(self, url: str, channels: Sequence[str], wake: Callable[[int], None]) -> None:
        self._url = url
        self._channels = list(channels)
        self._wake = wake
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taskq-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.05
        while not self._stopped.is_set():
            try:
                self._listen()
                return
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log.debug("wake-up channel lost (%s); resubscribing in %.2fs", exc, backoff)
                # a lost wake-up only delays a job until the next poll, so no need to hurry
                self._wake(0)
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, 2.0)

    def _listen(self) -> None:
        client = redis.Redis.from_url(self._url, socket_connect_timeout=5.0)
        pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(*self._channels)
            while not self._stopped.is_set():
                message = pubsub.get_message(timeout=0.5)
                if message is not None and message["type"] == "message":
                    try:
                        delay = int(message["data"])
                    except ValueError:
                        delay = 0
                    self._wake(delay)
        finally:
            pubsub.close()
            client.close()
