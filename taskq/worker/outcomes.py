"""Write finished attempts to the broker in batches, and say which ones it refused."""

from __future__ import annotations

from collections.abc import Sequence

from ..brokers.base import Ack, Broker, Bury, RetryLater
from .logs import log
from .outcome import Outcome


def write(broker: Broker, outcomes: Sequence[Outcome]) -> None:
    """Record every outcome: one ack, one retry and one bury call at most (per queue)."""
    acks = [o for o in outcomes if isinstance(o, Ack)]
    retries = [o for o in outcomes if isinstance(o, RetryLater)]
    buries = [o for o in outcomes if isinstance(o, Bury)]
    refused: list[Outcome] = []
    if acks:
        refused += [o for o, ok in zip(acks, broker.ack(acks), strict=True) if not ok]
    if retries:
        refused += [o for o, ok in zip(retries, broker.retry(retries), strict=True) if not ok]
    if buries:
        refused += [o for o, ok in zip(buries, broker.bury(buries), strict=True) if not ok]
    for outcome in refused:
        lease = outcome.lease
        log.warning(
            "outcome of job %s not recorded: its lease was lost (token %d is stale); the job "
            "belongs to whichever worker holds it now",
            lease.job_id,
            lease.token,
            extra={"event": "lost", "job_id": lease.job_id, "queue": lease.queue},
        )
