"""The msgpack codec and the job envelope: what round-trips, what is refused, what never runs."""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import enum
import pickle
import uuid

import pytest

from taskq.errors import EnqueueError
from taskq.job import FORMAT_VERSION, Job, new_job_id
from taskq.serialization import DecodeError, packb, unpackb

VALUES = [
    None,
    True,
    0,
    -(2**63),
    2**64 - 1,
    1.5,
    "héllo",
    b"\x00\xff",
    [1, [2, [3]]],
    {"a": {"b": [1, 2]}},
    (1, "two", (3,)),
    {1, 2, 3},
    dt.datetime(2026, 11, 28, 8, 30, 1, 123456),
    dt.datetime(2026, 11, 28, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.date(2026, 11, 28),
    dt.timedelta(days=1, seconds=2, microseconds=3),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    decimal.Decimal("1.10"),
    {"when": [dt.date(2020, 1, 1), uuid.UUID(int=7)]},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_values_round_trip_with_their_types(value: object) -> None:
    back = unpackb(packb(value))
    assert back == value
    assert type(back) is type(value)


def test_an_object_msgpack_cannot_carry_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="object"):
        packb(object())
    with pytest.raises(TypeError, match="integer 1180591620717411303424 is outside msgpack's"):
        packb({"n": [2**70]})


class Colour(enum.IntEnum):
    RED = 1


class Mood(str, enum.Enum):
    HAPPY = "happy"


class Items(list[int]):
    pass


@pytest.mark.parametrize(
    ("value", "plain"),
    [
        (Colour.RED, 1),
        (Mood.HAPPY, "happy"),
        (collections.OrderedDict(a=1), {"a": 1}),
        (collections.defaultdict(list, a=[1]), {"a": [1]}),
        (collections.Counter("aab"), {"a": 2, "b": 1}),
        (Items([1, 2]), [1, 2]),
        ({"n": [Colour.RED, collections.OrderedDict(b=Mood.HAPPY)]}, {"n": [1, {"b": "happy"}]}),
    ],
    ids=repr,
)
def test_subclasses_of_plain_types_travel_as_their_base_type(value: object, plain: object) -> None:
    back = unpackb(packb(value))
    assert back == plain
    assert type(back) is type(plain)


def test_job_round_trips() -> None:
    job = Job("id1", "greet", ("Ada", (1, 2)), {"when": dt.date(2026, 1, 1)}, "mail", 3, 123, {})
    assert Job.decode(job.encode(), "id1", "mail") == job


def test_the_body_leaves_the_id_and_queue_to_where_it_is_kept() -> None:
    job = Job("a-long-job-id-kept-as-the-key", "greet", ("Ada",), {}, "a-queue-name", 3, 123)
    body = job.encode()
    assert b"a-long-job-id" not in body and b"a-queue-name" not in body
    assert Job.decode(body, "other-id", "other-queue").id == "other-id"


def test_a_version_1_body_still_decodes() -> None:
    body = packb([1, "id1", "greet", ["Ada"], {"n": 1}, "mail", 3, 123, {"x": 1}])
    job = Job("id1", "greet", ("Ada",), {"n": 1}, "mail", 3, 123, {"x": 1})
    assert Job.decode(body, "id1", "mail") == job


def test_unencodable_argument_is_named() -> None:
    job = Job("id1", "greet", ("ok", object()), {}, "default", 3, 0)
    with pytest.raises(EnqueueError, match="positional argument 1 cannot be encoded"):
        job.encode()
    job = Job("id1", "greet", (), {"conn": object()}, "default", 3, 0)
    with pytest.raises(EnqueueError, match="argument 'conn' cannot be encoded"):
        job.encode()


def test_oversized_job_names_size_and_limit() -> None:
    job = Job("id1", "greet", ("x" * 2000,), {}, "default", 3, 0)
    with pytest.raises(EnqueueError, match=r"job is \d+ bytes, over the limit of 1000 bytes"):
        job.encode(max_size=1000)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xc1",  # never used in msgpack
        packb([FORMAT_VERSION, "task"])[:-1],  # truncated
        packb({"not": "an envelope"}),
        packb([FORMAT_VERSION + 1, "t", [], {}, 3, 0, {}]),
        packb([FORMAT_VERSION, 1, 2, 3, 4, 5, 6]),
        packb([FORMAT_VERSION, "t", [], {}, 3, 0]),  # a field short
        pickle.dumps(("os.system", "echo pwned")),
        b"\xc7\x05\x63hello",  # an extension type taskq never wrote
    ],
)
def test_bad_bodies_raise_decode_error_and_run_nothing(body: bytes) -> None:
    with pytest.raises(DecodeError):
        Job.decode(body, "id", "q")


def test_a_newer_format_version_is_refused_with_a_reason() -> None:
    body = packb([FORMAT_VERSION + 1, "id", "t", [], {}, "q", 3, 0, {}])
    with pytest.raises(DecodeError, match="newer than this taskq reads"):
        Job.decode(body, "id", "q")


def test_generated_job_ids_are_never_read_as_a_cli_option() -> None:
    # one id in 64 would start with "-" if nothing prevented it: 5,000 draws miss that ~never
    ids = {new_job_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert not [job_id for job_id in ids if job_id.startswith("-")]
    assert {len(job_id) for job_id in ids} == {22}
