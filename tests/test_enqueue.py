"""Enqueue checks at the call site (against a real Redis): refused calls write nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from typing import Any

import pytest
import redis

from taskq import App, EnqueueError
from taskq.brokers.redis_keys import QueueKeys

from .conftest import RedisServer


def _keys(client: redis.Redis, namespace: str) -> list[bytes]:
    return sorted(k for k in client.scan_iter(f"{namespace}:*") if not k.endswith(b":queues"))


@pytest.fixture
def greet(redis_app: App) -> Any:
    @redis_app.task(max_retries=2)
    def greet(name: str, punctuation: str = "!") -> str:
        return f"Hello {name}{punctuation}"

    return greet


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "missing a required argument: 'name'"),
        (("Ada", "!", "extra"), {}, "too many positional arguments"),
        (("Ada",), {"nme": "x"}, "unexpected keyword argument 'nme'"),
    ],
)
def test_arguments_that_do_not_bind_are_refused(
    greet: Any, redis_client: redis.Redis, namespace: str, args: Any, kwargs: Any, message: str
) -> None:
    with pytest.raises(EnqueueError, match=message):
        greet.delay_by(1, *args, **kwargs)
    assert _keys(redis_client, namespace) == []


def test_an_unencodable_argument_is_named(
    greet: Any, redis_client: redis.Redis, namespace: str
) -> None:
    with pytest.raises(EnqueueError, match="argument 'punctuation' cannot be encoded"):
        greet.delay("Ada", punctuation=object())
    assert _keys(redis_client, namespace) == []


def test_an_oversized_payload_names_size_and_limit(
    redis_client: redis.Redis, namespace: str
) -> None:
    app = App("redis://127.0.0.1:6379/0", namespace=namespace, env={}, max_job_size=1024)

    @app.task
    def store(blob: bytes) -> None: ...

    with pytest.raises(EnqueueError, match=r"over the limit of 1024 bytes"):
        store.delay(b"x" * 2048)
    assert _keys(redis_client, namespace) == []
    app.close()


@pytest.mark.parametrize(
    "delay", [-1, -0.001, math.nan, math.inf, -math.inf, dt.timedelta(seconds=-1)]
)
def test_bad_delays_are_value_errors(
    greet: Any, redis_client: redis.Redis, namespace: str, delay: Any
) -> None:
    with pytest.raises(ValueError):
        greet.delay_by(delay, "Ada")
    assert _keys(redis_client, namespace) == []


def test_delays_are_scored_by_the_server_clock(
    greet: Any, redis_client: redis.Redis, namespace: str
) -> None:
    seconds, micros = redis_client.time()
    before = seconds * 1_000_000 + micros
    handle = greet.delay_by(dt.timedelta(seconds=3), "Ada")
    seconds, micros = redis_client.time()
    after = seconds * 1_000_000 + micros
    # the waiting set is scored in µs: a due time carries no rounding
    due = redis_client.zscore(QueueKeys(namespace, "default").waiting, handle.id)
    assert due is not None and before + 3_000_000 <= due <= after + 3_000_000
    assert handle.status() == "scheduled"
    assert greet.delay("Bob").status() == "due"


def test_delay_at_uses_the_absolute_time(
    greet: Any, redis_client: redis.Redis, namespace: str
) -> None:
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    handle = greet.delay_at(when, "Ada")
    due = redis_client.zscore(QueueKeys(namespace, "default").waiting, handle.id)
    assert due == int(when.timestamp() * 1000) * 1000


def test_job_id_makes_enqueue_idempotent(
    greet: Any, redis_client: redis.Redis, namespace: str
) -> None:
    first = greet.with_options(job_id="greet-ada").delay_by(60, "Ada")
    second = greet.with_options(job_id="greet-ada").delay_by(1, "Someone else")
    assert first == second and first.id == "greet-ada"
    jobs = QueueKeys(namespace, "default")
    assert redis_client.zcard(jobs.waiting) == 1
    assert redis_client.zscore(jobs.waiting, "greet-ada") > (time.time() + 30) * 1_000_000


def test_with_options_picks_queue_and_retry_limit(greet: Any, redis_app: App) -> None:
    handle = greet.with_options(queue="mail", max_retries=7).delay("Ada")
    assert handle.queue == "mail"
    record = redis_app.inspector.get("mail", handle.id)
    assert record is not None and record.body is not None
    from taskq.job import Job

    job = Job.decode(record.body, handle.id, "mail")
    assert (job.queue, job.max_retries, job.task, job.args) == ("mail", 7, "greet", ("Ada",))
    assert "mail" in redis_app.inspector.queues()


def test_delay_many_checks_every_call_before_writing(
    greet: Any, redis_client: redis.Redis, namespace: str
) -> None:
    with pytest.raises(EnqueueError):
        greet.delay_many([(("Ada",), {}), ((), {})])
    assert _keys(redis_client, namespace) == []
    handles = greet.delay_many([((f"n{i}",), {}) for i in range(500)], delay=10)
    assert len({h.id for h in handles}) == 500
    assert redis_client.zcard(QueueKeys(namespace, "default").waiting) == 500


def test_async_producers_do_not_block_the_loop(greet: Any, redis_app: App) -> None:
    async def produce() -> list[str]:
        handles = await asyncio.gather(*(greet.adelay_by(5, f"n{i}") for i in range(20)))
        return [h.status() for h in handles]

    assert asyncio.run(produce()) == ["scheduled"] * 20


def test_a_plain_call_runs_locally_and_enqueues_nothing(
    greet: Any, redis_client: redis.Redis, namespace: str
) -> None:
    assert greet("Ada", "?") == "Hello Ada?"
    assert _keys(redis_client, namespace) == []


def test_registering_a_name_twice_is_refused(redis_app: App, greet: Any) -> None:
    from taskq import ConfigError

    with pytest.raises(ConfigError, match="already registered"):

        @redis_app.task(name="greet")
        def other() -> None: ...


def test_signatures_of_every_shape_are_checked() -> None:
    """Plain positional calls skip the full bind; a keyword-only parameter, ``*args`` or
    ``**kwargs`` always gets it, so nothing that does not bind slips through."""
    app = App("memory://", env={})

    @app.task
    def keyword_only(a: int, *, k: int) -> None: ...

    @app.task
    def var_args(*args: int) -> None: ...

    @app.task
    def var_kwargs(a: int, **kwargs: int) -> None: ...

    with pytest.raises(EnqueueError, match="missing a required argument: 'k'"):
        keyword_only.delay(1)  # type: ignore[call-arg]
    keyword_only.delay(1, k=2)
    var_args.delay(1, 2, 3, 4)
    var_kwargs.delay(1, x=2)
    with pytest.raises(EnqueueError, match="too many positional arguments"):
        var_kwargs.delay(1, 2)  # type: ignore[call-arg]
    assert app.inspector.counts("default").due == 3


def test_a_server_that_lost_the_scripts_is_given_them_again(private_redis: RedisServer) -> None:
    app = App(private_redis.url, namespace="ns", env={})
    try:

        @app.task
        def ping(n: int) -> None: ...

        ping.delay(1)
        client = redis.Redis.from_url(private_redis.url)
        client.script_flush()  # what a restart does
        assert ping.delay(2).status() == "due"  # one job: EVALSHA, NOSCRIPT, then EVAL
        client.script_flush()
        assert [h.status() for h in ping.delay_many([((3,), {}), ((4,), {})])] == ["due", "due"]
        client.script_flush()
        assert app.inspector.counts("default").due == 4  # every script, not only enqueue
        client.script_flush()
        assert len(app.broker.claim(["default"], 10, 30_000, "w").jobs) == 4
        client.close()
    finally:
        app.close()
