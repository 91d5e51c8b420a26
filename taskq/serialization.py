"""The msgpack codec for task arguments, results and job envelopes (no pickle, ever)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgpack

# Extension type codes; never renumber them, stored jobs depend on them.
_EXT_DATETIME = 1  # ISO 8601 text, timezone kept when present
_EXT_DATE = 2
_EXT_UUID = 3
_EXT_TIMEDELTA = 4  # msgpack of [days, seconds, microseconds]
_EXT_TUPLE = 5  # a msgpack array whose items are decoded as a tuple
_EXT_SET = 6
_EXT_DECIMAL = 7


class DecodeError(ValueError):
    """Bytes that are not a valid taskq payload."""


def _default(obj: object) -> object:
    if isinstance(obj, dt.datetime):
        return msgpack.ExtType(_EXT_DATETIME, obj.isoformat().encode())
    if isinstance(obj, dt.date):
        return msgpack.ExtType(_EXT_DATE, obj.isoformat().encode())
    if isinstance(obj, uuid.UUID):
        return msgpack.ExtType(_EXT_UUID, obj.bytes)
    if isinstance(obj, dt.timedelta):
        parts = [obj.days, obj.seconds, obj.microseconds]
        return msgpack.ExtType(_EXT_TIMEDELTA, _packb(parts))
    if isinstance(obj, tuple):
        return msgpack.ExtType(_EXT_TUPLE, _packb(list(obj)))
    if isinstance(obj, (set, frozenset)):
        return msgpack.ExtType(_EXT_SET, _packb(sorted(obj, key=repr)))
    import decimal

    if isinstance(obj, decimal.Decimal):
        return msgpack.ExtType(_EXT_DECIMAL, str(obj).encode())
    return _plain(obj)


def _plain(obj: object) -> object:
    """A subclass of a plain type (an IntEnum, a str Enum, an OrderedDict, a defaultdict) as
    its base type, as JSON would carry it: the task gets the value, not the subclass."""
    if type(obj) is int:  # strict_types hands back only an int msgpack has no room for
        raise TypeError(f"the integer {obj} is outside msgpack's 64-bit range")
    if isinstance(obj, str):
        return str.__str__(obj)  # the text itself: str() of a str Enum is its name
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, list):
        return list(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, bytes):
        return bytes(obj)
    raise TypeError(f"cannot encode an object of type {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> object:
    if code == _EXT_DATETIME:
        return dt.datetime.fromisoformat(data.decode())
    if code == _EXT_DATE:
        return dt.date.fromisoformat(data.decode())
    if code == _EXT_UUID:
        return uuid.UUID(bytes=data)
    if code == _EXT_TIMEDELTA:
        days, seconds, micros = unpackb(data)
        return dt.timedelta(days=days, seconds=seconds, microseconds=micros)
    if code == _EXT_TUPLE:
        return tuple(unpackb(data))
    if code == _EXT_SET:
        return set(unpackb(data))
    if code == _EXT_DECIMAL:
        import decimal

        return decimal.Decimal(data.decode())
    raise DecodeError(f"unknown msgpack extension type {code}")


def _packb(obj: object) -> bytes:
    return msgpack.packb(obj, default=_default, use_bin_type=True, strict_types=True)  # type: ignore[no-any-return]


def packb(obj: object) -> bytes:
    """Encode ``obj``; raises ``TypeError`` naming the first type msgpack cannot carry."""
    try:
        return _packb(obj)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(str(exc)) from None


def unpackb(data: bytes) -> Any:
    """Decode bytes written by :func:`packb`; raises :class:`DecodeError` on anything else."""
    try:
        return msgpack.unpackb(
            data, ext_hook=_ext_hook, raw=False, strict_map_key=False, use_list=True
        )
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise DecodeError(f"not valid msgpack ({detail})") from None


def find_unencodable(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Name the first argument msgpack cannot carry, and why (for an ``EnqueueError``)."""
    named = [(f"positional argument {i}", v) for i, v in enumerate(args)]
    named += [(f"argument {k!r}", v) for k, v in kwargs.items()]
    for what, value in named:
        try:
            _packb(value)
        except (TypeError, ValueError, OverflowError) as exc:
            return f"{what} cannot be encoded with msgpack: {exc}"
    return "the arguments cannot be encoded with msgpack"
