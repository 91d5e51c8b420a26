"""Start-up checks of the broker a worker is about to use: settings that could lose jobs."""

from __future__ import annotations

from ..brokers.base import Broker
from ..errors import BrokerError
from .logs import log


def warn_about_broker(broker: Broker) -> list[str]:
    """Log each of the broker's :meth:`~taskq.brokers.base.Broker.warnings`; returns them.

    An unreachable broker is not reported here: the claim loop says so, and retries.
    """
    try:
        problems = broker.warnings()
    except BrokerError as exc:
        log.debug("cannot check the broker's settings: %s", exc)
        return []
    for problem in problems:
        log.warning("%s", problem, extra={"event": "warning"})
    return problems
