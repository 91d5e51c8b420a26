"""Shared helpers of the inspection commands: paging flags, times, and a job as plain data."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..brokers import base
from ..brokers.base import JobRecord
from ..job import Job
from ..serialization import DecodeError


def check_page(offset: int, limit: int) -> None:
    """Refuse ``--limit`` below 1 or ``--offset`` below 0 as the brokers do, naming the flags (a
    ``ValueError``: exit code 2)."""
    try:
        base.check_page(offset, limit)
    except ValueError:
        raise ValueError("--limit must be >= 1 and --offset >= 0") from None


def iso(ms: int | None) -> str | None:
    """``2026-11-28T08:56:14.123Z`` for a time in ms since the epoch."""
    if ms is None:
        return None
    when = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def span(seconds: float) -> str:
    """``850ms``, ``12s``, ``5m03s``, ``2h05m`` or ``3d04h``."""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    whole = int(seconds)
    for unit, size, sub_unit, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60)):
        if whole >= size:
            return f"{whole // size}{unit}{(whole % size) // sub_size:02d}{sub_unit}"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"


def ago(seconds: float) -> str:
    return f"{span(seconds)} ago"


def relative(ms: int, now_ms: int) -> str:
    """``in 3s`` or ``3s ago``."""
    return f"in {span((ms - now_ms) / 1000)}" if ms > now_ms else ago((now_ms - ms) / 1000)


def describe(record: JobRecord) -> dict[str, Any]:
    """A job as plain data: its task and arguments (when they decode) and its last failure."""
    data: dict[str, Any] = {"id": record.job_id, "queue": record.queue, "attempts": record.attempt}
    try:
        job = Job.decode(record.body or b"", record.job_id, record.queue)
        data |= {"task": job.task, "args": repr(job.args), "kwargs": repr(job.kwargs)}
    except DecodeError as exc:
        data |= {"task": None, "body": (record.body or b"")[:200].hex(), "decode_error": str(exc)}
    failure = record.failure
    if failure is not None:
        data |= {"reason": failure.reason, "error": f"{failure.error_type}: {failure.message}"}
        data["traceback"] = failure.traceback
    return data
