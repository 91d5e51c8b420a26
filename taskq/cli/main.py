"""Parse ``taskq`` arguments, run the command, and turn errors into one line and an exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import BrokerError, ConfigError, EnqueueError, TaskqError
from . import commands, dead, info, jobs

USAGE_ERROR = 2  # bad module:app, URL, environment value, task name, JSON or flag
RUNTIME_ERROR = 1  # the broker failed


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="taskq", description="Typed Python tasks: run a worker, enqueue jobs, inspect queues."
    )
    top.add_argument("--version", action="version", version=f"taskq {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = sub.add_parser("worker", help="run a worker for an app's tasks")
    worker.add_argument("app", help="module:app, e.g. myproj.tasks:app")
    worker.add_argument(
        "--queues",
        default=None,
        help="comma-separated queues, in priority order (default: default)",
    )
    worker.add_argument("--concurrency", type=int, default=10, help="jobs run at once (default 10)")
    worker.add_argument(
        "--prefetch",
        type=int,
        default=None,
        help="most jobs claimed beyond the free slots while jobs are short "
        "(default 4 x concurrency; 0: none)",
    )
    worker.add_argument(
        "--processes",
        type=int,
        default=1,
        help="worker processes, restarted if they die; signals are forwarded (default 1)",
    )
    worker.add_argument(
        "--poll-interval",
        default=None,
        help="longest sleep between claims, e.g. 200ms (default: INTERVAL, else 1s)",
    )
    worker.add_argument(
        "--lease", default="25s", help="how long a claim lasts without renewal (default 25s)"
    )
    worker.add_argument(
        "--grace", default="30s", help="time running jobs get to finish on stop (default 30s)"
    )
    worker.add_argument(
        "--burst", action="store_true", help="exit once nothing is waiting or running"
    )
    worker.add_argument(
        "--strict",
        action="store_true",
        help="refuse to start (exit 2) if the broker's settings could lose jobs, e.g. a Redis "
        "maxmemory-policy other than noeviction",
    )
    worker.add_argument("--log-format", choices=("text", "json"), default="text")
    worker.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info"
    )
    worker.set_defaults(run=commands.worker)

    enqueue = sub.add_parser(
        "enqueue", help="enqueue one job (the Go scheduler's 'scheduler' command)"
    )
    enqueue.add_argument("app", help="module:app")
    enqueue.add_argument("task", help="registered task name")
    enqueue.add_argument(
        "args", nargs="*", metavar="JSON_ARG", help="positional arguments, each as JSON"
    )
    enqueue.add_argument(
        "--kw", default=None, metavar="JSON_OBJ", help="keyword arguments as a JSON object"
    )
    enqueue.add_argument(
        "--delay", default=None, help="delay, e.g. 3, 3s, 200ms (default: JOB_DELAY, else 0)"
    )
    enqueue.add_argument(
        "--job-id",
        default=None,
        help="idempotency key: a job with this id waiting or running is not enqueued again",
    )
    enqueue.add_argument("--queue", default=None, help="queue (default: the task's)")
    enqueue.set_defaults(run=commands.enqueue)

    info.add_parser(sub)
    jobs.add_parser(sub)
    dead.add_parser(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taskq`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    try:
        return int(args.run(args))
    except (ConfigError, EnqueueError, ValueError) as exc:
        print(f"taskq: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except (BrokerError, TaskqError) as exc:
        print(f"taskq: error: {exc}", file=sys.stderr)
        return RUNTIME_ERROR
    except KeyboardInterrupt:
        return 130
