"""A thread that turns Redis pub/sub wake-up messages into calls of a worker's wake function."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import redis

from ..serialization import unpackb

log = logging.getLogger("taskq.broker")

# How long start() waits for the subscription to be confirmed. Without the wait, a job enqueued
# right after watch() returned could be published before the server had subscribed us, and that
# wake-up was lost (the worker then only saw the job at its next poll).
SUBSCRIBE_WAIT = 2.0


class Watcher:
    """Subscribes to wake channels on its own connection, resubscribing after connection loss."""

    def __init__(self, url: str, channels: Sequence[str], wake: Callable[[int], None]) -> None:
        self._url = url
        self._channels = list(channels)
        self._wake = wake
        self._stopped = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="taskq-watch", daemon=True)

    def start(self) -> None:
        """Start watching; returns once subscribed (or after a bounded wait if Redis is down)."""
        self._thread.start()
        self._subscribed.wait(SUBSCRIBE_WAIT)

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
        pubsub = client.pubsub()  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(*self._channels)
            confirmed = 0
            while not self._stopped.is_set():
                message = pubsub.get_message(timeout=0.1)  # how soon stop() is noticed
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    # the server confirms each channel: from now on no publish is missed
                    confirmed += 1
                    if confirmed >= len(self._channels):
                        self._subscribed.set()
                elif message["type"] == "message":
                    try:
                        delay = int(message["data"])
                    except ValueError:
                        delay = 0
                    self._wake(delay)
        finally:
            pubsub.close()
            client.close()


class FinishWaiter:
    """Subscribed to a queue's ``done`` channel until closed; ``wait`` returns when the
    channel names one job."""

    def __init__(self, client: redis.Redis, channel: str, job_id: str) -> None:
        self._job_id = job_id
        self._pubsub = client.pubsub()  # type: ignore[no-untyped-call]
        try:
            self._pubsub.subscribe(channel)
            # the server's confirmation: from now on no end of the job is missed
            deadline = time.monotonic() + SUBSCRIBE_WAIT
            while time.monotonic() < deadline:
                message = self._pubsub.get_message(timeout=deadline - time.monotonic())
                if message is not None and message["type"] == "subscribe":
                    break
        except BaseException:
            self._pubsub.close()
            raise

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(timeout, 0.0)
        try:
            while (left := deadline - time.monotonic()) > 0:
                message = self._pubsub.get_message(timeout=left)
                if message is None or message["type"] != "message":
                    continue
                if self._job_id in unpackb(message["data"]):
                    return True
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            # the caller checks the job's state anyway; a lost channel only costs a poll
            log.debug("done channel lost (%s)", exc)
            time.sleep(max(0.0, min(deadline - time.monotonic(), 0.5)))
        return False

    def close(self) -> None:
        self._pubsub.close()
