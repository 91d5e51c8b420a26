"""The job envelope: what is stored for one call, and its versioned msgpack form."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from .errors import EnqueueError
from .serialization import DecodeError, find_unencodable, packb, unpackb

FORMAT_VERSION = 2  # 2: the id and queue are no longer in the body (where it is kept says them)
DEFAULT_MAX_SIZE = 512 * 1024  # bytes of one encoded job


def new_job_id() -> str:
    """A fresh random job id: 128 random bits as 22 URL-safe characters (short: it is stored
    with every job in several places), never starting with ``-`` so that it can be passed to the
    CLI without being read as an option."""
    while (job_id := secrets.token_urlsafe(16)).startswith("-"):
        pass
    return job_id


@dataclass(frozen=True)
class Job:
    """One call of a task, as stored by the broker.

    Attempts and leases are not part of the envelope: the broker counts them, so a crash that
    never reached the code that would rewrite the envelope is still counted.
    """

    id: str
    task: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str
    max_retries: int
    enqueued_at: int  # ms since the epoch, producer's clock (informational)
    options: dict[str, Any] = field(default_factory=dict)

    def encode(self, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
        """The versioned msgpack body; raises :class:`EnqueueError` naming what is wrong.

        The id and the queue are not in it: a broker keeps a body under its id, in its queue
        (each copy would cost every waiting job ~30 bytes)."""
        fields = [
            FORMAT_VERSION,
            self.task,
            list(self.args),
            self.kwargs,
            self.max_retries,
            self.enqueued_at,
            self.options,
        ]
        try:
            body = packb(fields)
        except TypeError:
            raise EnqueueError(
                f"task {self.task!r}: {find_unencodable(self.args, self.kwargs)}"
            ) from None
        if len(body) > max_size:
            raise EnqueueError(
                f"task {self.task!r}: job is {len(body)} bytes, over the limit of {max_size} bytes"
            )
        return body

    @classmethod
    def decode(cls, body: bytes, job_id: str, queue: str) -> Job:
        """Read a body written by :meth:`encode`, kept under ``job_id`` in ``queue``; raises
        ``DecodeError`` for anything else."""
        fields = unpackb(body)
        if not isinstance(fields, list) or not fields or not isinstance(fields[0], int):
            raise DecodeError("not a taskq job envelope")
        if fields[0] > FORMAT_VERSION:
            raise DecodeError(f"job format version {fields[0]} is newer than this taskq reads")
        if fields[0] == 1 and len(fields) == 9:  # version 1 kept the id and queue too
            del fields[5], fields[1]
        try:
            _, task, args, kwargs, max_retries, enqueued_at, options = fields
        except ValueError:
            raise DecodeError("job envelope has the wrong number of fields") from None
        if not (
            isinstance(task, str)
            and isinstance(args, list)
            and isinstance(kwargs, dict)
            and isinstance(max_retries, int)
            and isinstance(options, dict)
        ):
            raise DecodeError("job envelope has fields of the wrong type")
        return cls(job_id, task, tuple(args), kwargs, queue, max_retries, enqueued_at, options)
