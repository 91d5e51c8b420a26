"""Settings from the environment and a ``.env`` file, honouring the Go scheduler's names."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError

DEFAULT_URL = "sqlite:///taskq.db"
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_UNIT = r"(?:ns|us|µs|μs|ms|s|m|h)"
# a bare number of seconds, or Go's time.ParseDuration form: one or more number-unit parts
_DURATION = re.compile(rf"^(?:{_NUMBER}|(?:{_NUMBER}{_UNIT})+)$")
_PART = re.compile(rf"({_NUMBER})({_UNIT})?")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign
    "μs": 1e-6,  # Greek mu: Go accepts both
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    None: 1.0,
}


def parse_duration(text: str, name: str, *, positive: bool = False) -> float:
    """Seconds in ``"200ms"``, ``"3s"``, ``"1.5m"``, ``"2h"``, Go's ``"1m30s"`` or a bare number
    of seconds; ``positive``: zero is refused too, naming ``name``."""
    compact = text.strip()
    if not _DURATION.match(compact):
        raise ConfigError(f"{name}={text!r} is not a duration (use e.g. 200ms, 3s, 1m30s)")
    seconds = sum(float(n) * _UNIT_SECONDS[unit or None] for n, unit in _PART.findall(compact))
    if positive and seconds <= 0:
        raise ConfigError(f"{name}={text!r} must be more than 0")
    return seconds


def parse_int(text: str, name: str, minimum: int = 0) -> int:
    """A whole number of at least ``minimum``, or a :class:`ConfigError` naming ``name``."""
    try:
        value = int(text.strip())
    except ValueError:
        raise ConfigError(f"{name}={text!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={text!r} must be at least {minimum}")
    return value


def check_delay(seconds: float) -> float:
    """A delay as finite, non-negative seconds; anything else is a ``ValueError``."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"delay must be a number of seconds or a timedelta, got {seconds!r}")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"delay must be finite and >= 0 seconds, got {seconds!r}")
    return float(seconds)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for logs and errors."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if "password" in parts.query.lower():  # redis-py also reads ?password=... (found by tests)
        query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
        parts = parts._replace(query=query)
        url = urlunsplit(parts)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a ``.env`` file (``#`` comments, optional quotes and ``export``)."""
    values: dict[str, str] = {}
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return values
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").strip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"{path}:{number}: expected KEY=value, got {raw.strip()!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        values[key.strip()] = value
    return values


def environment(
    environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> dict[str, str]:
    """The ``.env`` file of ``cwd`` overlaid by the real environment (which wins)."""
    merged = read_dotenv((cwd or Path.cwd()) / ".env")
    merged.update(os.environ if environ is None else environ)
    return merged


@dataclass(frozen=True)
class Settings:
    """Everything taskq reads from its environment."""

    url: str = DEFAULT_URL
    poll_interval: float = 1.0  # upper bound of a worker's sleep; wake-ups usually come first
    job_delay: float = 0.0  # default --delay of ``taskq enqueue``
    max_retries: int = 3

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read ``TASKQ_URL``/``REDIS_URL``/``REDIS_ADDR``+``REDIS_DB``, ``INTERVAL``, ``JOB_*``."""
        fields: dict[str, object] = {"url": resolve_url(env)}
        if "INTERVAL" in env:
            fields["poll_interval"] = parse_duration(env["INTERVAL"], "INTERVAL", positive=True)
        if "JOB_DELAY" in env:
            fields["job_delay"] = parse_duration(env["JOB_DELAY"], "JOB_DELAY")
        if "JOB_MAX_RETRY" in env:
            fields["max_retries"] = parse_int(env["JOB_MAX_RETRY"], "JOB_MAX_RETRY")
        return cls(**fields)  # type: ignore[arg-type]


def resolve_url(env: Mapping[str, str]) -> str:
    """The broker URL: ``TASKQ_URL``, else ``REDIS_URL``, else ``REDIS_ADDR`` (+ ``REDIS_DB``)."""
    for name in ("TASKQ_URL", "REDIS_URL"):
        if env.get(name):
            return env[name]
    addr = env.get("REDIS_ADDR", "")
    if addr:
        db = parse_int(env.get("REDIS_DB", "0") or "0", "REDIS_DB")
        if not re.match(r"^[\w.\-\[\]:]+:\d+$|^[\w.\-]+$", addr):
            raise ConfigError(f"REDIS_ADDR={addr!r} is not host:port")
        return f"redis://{addr}/{db}"
    return DEFAULT_URL
