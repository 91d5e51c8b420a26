"""Start-up checks of the broker a worker is about to use: settings that could lose jobs."""

from __future__ import annotations

from ..brokers.base import Broker
from ..errors import BrokerError, BrokerUnavailable
from .logs import log


def warn_about_broker(broker: Broker) -> list[str]:
    """Log each of the broker's :meth:`~taskq.brokers.base.Broker.warnings`; returns them.

    An unreachable broker is said at once (a wrong URL must not look like an idle worker); the
    claim loop then retries until it answers.
    """
    try:
        problems = broker.warnings()
    except BrokerUnavailable as exc:
        log.error("%s (the worker keeps trying)", exc, extra={"event": "unreachable"})
        return []
    except BrokerError as exc:
        log.debug("cannot check the broker's settings: %s", exc)
        return []
    for problem in problems:
        log.warning("%s", problem, extra={"event": "warning"})
    return problems
