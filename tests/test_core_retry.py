"""Backoff maths and the retry decision."""

from __future__ import annotations

import pytest

from taskq import Backoff, Retry
from taskq.retry import decide


def test_backoff_doubles_from_two_seconds_up_to_the_cap_without_jitter() -> None:
    backoff = Backoff(initial=2, factor=2, cap=30, jitter=0)
    assert [backoff.delay(a) for a in range(1, 7)] == [2, 4, 8, 16, 30, 30]
    assert backoff.delay(10_000) == 30  # no overflow for absurd attempt numbers


def test_jitter_only_shortens_and_stays_within_its_fraction() -> None:
    backoff = Backoff(initial=2, jitter=0.5, rand=lambda: 1.0)
    assert backoff.delay(1) == 1.0
    backoff = Backoff(initial=2, jitter=0.5, rand=lambda: 0.0)
    assert backoff.delay(1) == 2.0


@pytest.mark.parametrize(
    "bad", [{"initial": -1}, {"factor": 0.5}, {"jitter": 2}, {"cap": 1, "initial": 5}]
)
def test_invalid_backoff_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**bad)


def _decide(exc: BaseException, attempt: int, **kw: object) -> tuple[bool, float]:
    options: dict[str, object] = {
        "max_retries": 3,
        "backoff": Backoff(jitter=0),
        "retry_on": (Exception,),
        "no_retry_on": (),
    }
    options.update(kw)
    decision = decide(exc, attempt, **options)  # type: ignore[arg-type]
    return decision.retry, decision.delay


def test_retries_until_max_retries_then_gives_up() -> None:
    assert _decide(ValueError(), 1) == (True, 2.0)
    assert _decide(ValueError(), 3) == (True, 8.0)
    assert _decide(ValueError(), 4)[0] is False
    assert _decide(ValueError(), 1, max_retries=0)[0] is False


def test_retry_exception_sets_the_delay_and_still_counts() -> None:
    assert _decide(Retry(delay=0.5), 1) == (True, 0.5)
    assert _decide(Retry(), 2) == (True, 4.0)
    assert _decide(Retry(delay=1), 4)[0] is False


def test_exception_filters() -> None:
    assert _decide(KeyError(), 1, no_retry_on=(LookupError,))[0] is False
    assert _decide(ValueError(), 1, retry_on=(OSError,))[0] is False
    assert _decide(ConnectionError(), 1, retry_on=(OSError,))[0] is True


def test_callable_backoff() -> None:
    assert _decide(ValueError(), 2, backoff=lambda attempt: attempt * 10.0) == (True, 20.0)


@pytest.mark.parametrize("delay", [-1.0, float("nan"), float("inf")])
def test_retry_refuses_bad_delays(delay: float) -> None:
    with pytest.raises(ValueError):
        Retry(delay=delay)
