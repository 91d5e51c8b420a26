"""Backoff maths and the retry decision for a failed attempt."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import Retry


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``initial * factor**(attempt-1)`` seconds, capped, with jitter.

    ``jitter`` is the fraction of the delay that is randomised downwards, so retries of many jobs
    that failed together spread out instead of striking again at the same instant; a delay never
    exceeds ``cap``.
    """

    initial: float = 2.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: float = 0.1
    rand: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (0 <= self.initial <= self.cap) or self.factor < 1 or not (0 <= self.jitter <= 1):
            raise ValueError(f"invalid backoff {self!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1``, given that attempt ``attempt`` failed."""
        exponent = max(attempt - 1, 0)
        base = self.cap if exponent > 64 else min(self.cap, self.initial * self.factor**exponent)
        return base * (1 - self.jitter * self.rand())


BackoffPolicy = Backoff | Callable[[int], float]


@dataclass(frozen=True)
class RetryDecision:
    """What to do with a failed attempt: retry after ``delay`` seconds, or give up."""

    retry: bool
    delay: float = 0.0


def decide(
    exc: BaseException,
    attempt: int,
    max_retries: int,
    backoff: BackoffPolicy,
    retry_on: tuple[type[BaseException], ...],
    no_retry_on: tuple[type[BaseException], ...],
) -> RetryDecision:
    """Decide whether attempt ``attempt`` (1-based) that raised ``exc`` is retried, and when."""
    if attempt > max_retries:
        return RetryDecision(False)
    if isinstance(exc, Retry):
        delay = exc.delay
    elif isinstance(exc, no_retry_on) or not isinstance(exc, retry_on):
        return RetryDecision(False)
    else:
        delay = None
    if delay is None:
        delay = backoff.delay(attempt) if isinstance(backoff, Backoff) else float(backoff(attempt))
    return RetryDecision(True, max(0.0, delay))
