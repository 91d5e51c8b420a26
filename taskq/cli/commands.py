"""The ``taskq`` subcommands worker and enqueue (info, jobs and dead have modules of their own)."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from ..config import mask_url, parse_duration
from ..errors import ConfigError
from ..options import DEFAULT_QUEUE
from ..worker import Worker, WorkerOptions
from ..worker.logs import configure
from ..worker.signals import run_in_foreground
from ..worker.supervisor import Supervisor, worker_command
from .loader import load_app


def worker(args: argparse.Namespace) -> int:
    """``taskq worker``: run the app's tasks until stopped."""
    configure(args.log_format, getattr(logging, args.log_level.upper()))
    app = load_app(args.app)
    poll = app.settings.poll_interval
    if args.poll_interval is not None:
        poll = parse_duration(args.poll_interval, "--poll-interval", positive=True)
    queues = tuple(q.strip() for q in args.queues.split(",")) if args.queues else (DEFAULT_QUEUE,)
    options = WorkerOptions(
        queues=queues,
        concurrency=args.concurrency,
        prefetch=args.prefetch,
        lease=parse_duration(args.lease, "--lease", positive=True),
        poll_interval=poll,
        grace=parse_duration(args.grace, "--grace"),
        burst=args.burst,
    )
    if args.strict and (problems := app.broker.warnings()):
        raise ConfigError("refusing to start (--strict): " + "; ".join(problems))
    # the flags are checked above, before any child starts: a bad flag is one error and exit
    # code 2 here, not children that fail on start and are restarted forever
    if args.processes != 1:
        broker = mask_url(app.broker.url)
        return Supervisor(worker_command(args.argv), args.processes, args.burst, broker).run()
    return run_in_foreground(Worker(app, options))


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} is not valid JSON ({exc.msg}): {text!r}") from None


def enqueue(args: argparse.Namespace) -> int:
    """``taskq enqueue``: enqueue one job and print its id."""
    app = load_app(args.app)
    task = app.tasks.get(args.task)
    if task is None:
        known = ", ".join(sorted(app.tasks)) or "none"
        raise ConfigError(f"no task named {args.task!r} in {args.app} (registered: {known})")
    positional = [_json(a, f"argument {i + 1}") for i, a in enumerate(args.args)]
    keywords = _json(args.kw, "--kw") if args.kw else {}
    if not isinstance(keywords, dict):
        raise ConfigError(f"--kw must be a JSON object, got {args.kw!r}")
    delay = app.settings.job_delay
    if args.delay is not None:
        delay = parse_duration(args.delay, "--delay")
    handle = task.with_options(job_id=args.job_id, queue=args.queue).delay_by(
        delay, *positional, **keywords
    )
    print(handle.id)
    return 0
