"""One log line per job outcome: emoji marks on a terminal, JSON objects for machines."""

from __future__ import annotations

import json
import logging
import sys
import time
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
    "cancelled": "🚫",
    "info": "ℹ️",
    "warning": "⚠️",
}


class TextFormatter(logging.Formatter):
    """``HH:MM:SS ✅ executed greet 3f2a… in 1.2ms`` — the Go scheduler's marks, one line each."""

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", "warning" if record.levelno >= logging.WARNING else "info")
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {MARKS.get(event, '•')} {record.getMessage()}"
        if record.exc_info and record.levelno >= logging.ERROR:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``event``, ``message`` and the job's fields."""

    _encode = json.JSONEncoder(ensure_ascii=False).encode  # built once, not once per line
    FIELDS = ("job_id", "task", "queue", "attempt", "duration_ms", "delay_s", "error", "reason")

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "event": getattr(record, "event", "log"),
            "message": record.getMessage(),
        }
        for name in self.FIELDS:
            if hasattr(record, name):
                data[name] = getattr(record, name)
        return self._encode(data)


def event(level: int, name: str, message: str, *args: object, **fields: Any) -> None:
    """Log one job event (``name`` picks its mark and is its JSON ``event``) with its fields.

    Cheaper than ``log.info(..., extra=...)``: nothing is built when the level is off, and the
    record skips the caller lookup (its ``pathname``/``lineno`` say ``taskq.worker``/0).
    """
    if log.isEnabledFor(level):
        fields["event"] = name
        log.handle(log.makeRecord(log.name, level, log.name, 0, message, args, None, extra=fields))


def configure(
    log_format: str = "text", level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Send taskq's logs to ``stream`` (stderr) as ``text`` or ``json``; replaces earlier setup."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log format must be text or json, got {log_format!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger("taskq")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
