"""200,000 jobs through one queue of a private Redis: what is kept of finished jobs (results,
finished records, dead jobs and their failures) stays within the configured TTLs and counts."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from taskq.brokers import Retention
from taskq.brokers.base import Ack, Bury, EnqueueItem, Failure, RetryLater
from taskq.brokers.redis import RedisBroker
from taskq.brokers.redis_keys import NamespaceKeys
from tests.conftest import RedisServer
from tests.faults.helpers import wait_for

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]

TOTAL = 200_000
CHUNK = 10_000
RESULT_TTL_MS = 500
RETENTION = Retention(dead_max=500, finished_max=1_000, finished_ttl_ms=60_000)
BODY = b"\x99" + b"x" * 80  # about the size of a small job envelope
FAILURE = Failure("RuntimeError", "boom " * 10, "Traceback ... " * 20, "failed")


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def run_chunk(broker: RedisBroker, start: int) -> None:
    """Enqueue, claim and finish CHUNK jobs: 70% acked with a result, 20% buried, 10% failing
    once (retried with a failure kept) and then acked."""
    ids = [f"{start + n}" for n in range(CHUNK)]
    broker.enqueue([EnqueueItem("q", job_id, BODY) for job_id in ids])
    claimed = broker.claim(["q"], CHUNK, 60_000, "w").jobs
    assert len(claimed) == CHUNK
    acks, buries, retries = [], [], []
    for n, job in enumerate(claimed):
        if n % 10 < 7:
            acks.append(Ack(job.lease, b"result-" + job.job_id.encode(), RESULT_TTL_MS))
        elif n % 10 < 9:
            buries.append(Bury(job.lease, FAILURE))
        else:
            retries.append(RetryLater(job.lease, 0, FAILURE))
    assert all(broker.ack(acks)) and all(broker.bury(buries)) and all(broker.retry(retries))
    again = broker.claim(["q"], CHUNK, 60_000, "w").jobs
    assert len(again) == len(retries)
    assert all(broker.ack([Ack(job.lease) for job in again]))


def sizes(client: redis.Redis, namespace: str) -> dict[str, int]:
    k = NamespaceKeys(namespace).queue("q")
    return {
        "keys": int(client.dbsize()),
        "memory": int(client.info("memory")["used_memory"]),
        "dead": int(client.zcard(k.dead)),
        "finished": int(client.zcard(k.finished)),
        "failures": int(client.hlen(k.failures)),
        "bodies": int(client.hlen(k.jobs)),
    }


def test_two_hundred_thousand_jobs_leave_bounded_keys_and_memory(server: RedisServer) -> None:
    client = redis.Redis(port=server.port)
    broker = RedisBroker(server.url, "ret", RETENTION)
    try:
        baseline = int(client.info("memory")["used_memory"])
        peak: dict[str, int] = {}
        started = time.monotonic()
        for start in range(0, TOTAL, CHUNK):
            run_chunk(broker, start)
            now = sizes(client, "ret")
            peak = {name: max(peak.get(name, 0), value) for name, value in now.items()}
            assert now["dead"] <= RETENTION.dead_max, now
            assert now["finished"] <= RETENTION.finished_max, now
            assert now["failures"] <= RETENTION.dead_max and now["bodies"] <= RETENTION.dead_max
        took = time.monotonic() - started
        print(f"{TOTAL:,} jobs in {took:.1f}s; peak {peak}; baseline memory {baseline:,}")
        # results expire by their TTL; what is left is bounded by the counts alone
        wait_for(lambda: client.dbsize() <= 12, 15, "the results to expire", interval=0.2)
        end = sizes(client, "ret")
        print(f"after the results' TTL: {end}")
        assert end["memory"] - baseline < 5_000_000, end
        assert peak["memory"] - baseline < 60_000_000, peak
    finally:
        broker.close()
        client.close()
