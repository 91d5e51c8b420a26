"""One log line per job outcome: emoji marks on a terminal, JSON objects for machines."""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

log = logging.getLogger("taskq.worker")

MARKS = {
    "started": "🚀",
    "executed": "✅",
    "failed": "⚠️",
    "retrying": "🔄",
    "exhausted": "❌",
    "dead": "❌",
    "lost": "⛔",
    "unreachable": "🔌",
    "cancelled": "🚫",
    "info": "ℹ️",
    "warning": "⚠️",
}


class TextFormatter(logging.Formatter):
    """``HH:MM:SS ✅ executed greet 3f2a… in 1.2ms`` — the Go scheduler's marks, one line each."""

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", "warning" if record.levelno >= logging.WARNING else "info")
        line = self.event_line(record.created, record.levelno, event, record.getMessage(), {})
        if record.exc_info and record.levelno >= logging.ERROR:
            line += "\n" + self.formatException(record.exc_info)
        return line

    def event_line(
        self, created: float, level: int, event: str, message: str, fields: dict[str, Any]
    ) -> str:
        """The line of one job event, without a ``LogRecord``; the fields are not shown."""
        stamp = time.strftime("%H:%M:%S", time.localtime(created))
        return f"{stamp} {MARKS.get(event, '•')} {message}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``event``, ``message`` and the job's fields."""

    FIELDS = ("job_id", "task", "queue", "attempt", "duration_ms", "delay_s", "error", "reason")

    def format(self, record: logging.LogRecord) -> str:
        fields = {name: getattr(record, name) for name in self.FIELDS if hasattr(record, name)}
        event = getattr(record, "event", "log")
        return self.event_line(record.created, record.levelno, event, record.getMessage(), fields)

    def event_line(
        self, created: float, level: int, event: str, message: str, fields: dict[str, Any]
    ) -> str:
        """The line of one job event, without a ``LogRecord``: the JSON ``json.dumps`` writes,
        built piece by piece (a third of the cost of encoding a dict, once per job)."""
        line = (
            f'{{"ts": {_value(round(created, 3))}, '
            f'"level": {_text(_LEVELS.get(level) or logging.getLevelName(level).lower())}, '
            f'"event": {_text(event)}, "message": {_text(message)}'
        )
        for name in self.FIELDS:
            if name in fields:
                line += f', "{name}": {_value(fields[name])}'
        return line + "}"


_text = json.encoder.encode_basestring  # a JSON string, in C
_encode_any = json.JSONEncoder(ensure_ascii=False).encode


def _value(value: Any) -> str:
    """``value`` as JSON, as ``json.dumps(..., ensure_ascii=False)`` writes it."""
    kind = type(value)
    if kind is str:
        return _text(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return _encode_any(value)


_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}


class EventHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs. While the only thing taskq's logs go to, it
    takes job events straight from :func:`event` as lines (no ``LogRecord``, no filters to
    run), and a thread inside :meth:`batch` has its lines written in one piece at the end."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._local = threading.local()  # .lines: the batch of the thread inside batch()

    def write_event(
        self, level: int, event: str, message: str, args: tuple[object, ...], fields: dict[str, Any]
    ) -> None:
        formatter: TextFormatter | JsonFormatter = self.formatter  # type: ignore[assignment]
        try:
            text = message % args if args else message
            line = formatter.event_line(time.time(), level, event, text, fields)
        except Exception:  # as for a record: reported on stderr, never raised into the worker
            self.handleError(logging.makeLogRecord({"msg": message, "args": args}))
            return
        lines: list[str] | None = getattr(self._local, "lines", None)
        if lines is not None:
            lines.append(line)
        else:
            self._write(line + self.terminator)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold this thread's event lines, then write them with one call (one ``write`` to a
        line-buffered stderr, not one per line). Inside another batch, it is part of that one."""
        if getattr(self._local, "lines", None) is not None:
            yield
            return
        lines: list[str] = []
        self._local.lines = lines
        try:
            yield
        finally:
            self._local.lines = None
            if lines:
                self._write(self.terminator.join(lines) + self.terminator)

    def _write(self, text: str) -> None:
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            try:
                self.stream.write(text)
                self.flush()
            except Exception:
                self.handleError(logging.makeLogRecord({"msg": text.rstrip()}))


_root = logging.getLogger("taskq")


def _direct() -> EventHandler | None:
    """The :class:`EventHandler` that job events can go to directly: the only handler taskq's
    logs reach, with no filter on the way and a taskq formatter. ``None`` otherwise
    (a user's own logging setup), and events take the standard path."""
    handlers = _root.handlers
    # (a filter on the ``taskq`` logger itself does not see records of ``taskq.worker``)
    if len(handlers) != 1 or log.handlers or log.filters:
        return None
    handler = handlers[0]
    if (
        type(handler) is not EventHandler
        or handler.filters
        or not log.propagate
        or _root.propagate
        or type(handler.formatter) not in (TextFormatter, JsonFormatter)
    ):
        return None
    return handler


def event(level: int, name: str, message: str, *args: object, **fields: Any) -> None:
    """Log one job event (``name`` picks its mark and is its JSON ``event``) with its fields.

    Cheaper than ``log.info(..., extra=...)``: nothing is built when the level is off; with
    :func:`configure`'s handler alone, the line is written without a ``LogRecord``; otherwise
    the record skips the caller lookup (its ``pathname``/``lineno`` say ``taskq.worker``/0).
    """
    if log.isEnabledFor(level):
        emit(level, name, message, args, fields)


def emit(
    level: int, name: str, message: str, args: tuple[object, ...], fields: dict[str, Any]
) -> None:
    """:func:`event` with its arguments and fields as they are, once ``level`` is known to be
    on (``fields`` may be changed)."""
    handler = _direct()
    if handler is not None and level >= handler.level:
        handler.write_event(level, name, message, args, fields)
        return
    fields["event"] = name
    log.handle(log.makeRecord(log.name, level, log.name, 0, message, args, None, extra=fields))


@contextmanager
def batch() -> Iterator[None]:
    """Job events logged by this thread inside the block are written together at its end
    (when they go to :func:`configure`'s handler; otherwise each is handled as it comes)."""
    handler = _direct()
    if handler is None:
        yield
        return
    with handler.batch():
        yield


def configure(
    log_format: str = "text", level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Send taskq's logs to ``stream`` (stderr) as ``text`` or ``json``; replaces earlier setup."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log format must be text or json, got {log_format!r}")
    handler = EventHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    for old in list(_root.handlers):
        _root.removeHandler(old)
    _root.addHandler(handler)
    _root.setLevel(level)
    _root.propagate = False
