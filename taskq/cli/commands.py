"""The ``taskq`` subcommands: worker, enqueue and info."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from ..brokers.base import Inspector
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
        poll = parse_duration(args.poll_interval, "--poll-interval")
    queues = tuple(q.strip() for q in args.queues.split(",")) if args.queues else (DEFAULT_QUEUE,)
    options = WorkerOptions(
        queues=queues,
        concurrency=args.concurrency,
        lease=parse_duration(args.lease, "--lease"),
        poll_interval=poll,
        grace=parse_duration(args.grace, "--grace"),
        burst=args.burst,
    )
    # the flags are checked above, before any child starts: a bad flag is one error and exit
    # code 2 here, not children that fail on start and are restarted forever
    if args.processes != 1:
        return Supervisor(worker_command(args.argv), args.processes, burst=args.burst).run()
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


def info(args: argparse.Namespace) -> int:
    """``taskq info``: counts per queue and the live workers."""
    app = load_app(args.app)
    inspector: Inspector = app.inspector
    queues = {q: inspector.counts(q) for q in inspector.queues()}
    workers = inspector.workers()
    if args.json:
        data = {
            "broker": mask_url(app.broker.url),
            "queues": {q: vars(c) for q, c in queues.items()},
            "workers": [vars(w) | {"queues": list(w.queues)} for w in workers],
        }
        json.dump(data, sys.stdout, indent=2)
        print()
        return 0
    print(f"broker  {mask_url(app.broker.url)}  namespace {app.namespace}")
    print(f"{'queue':<20} {'due':>8} {'scheduled':>10} {'running':>8} {'dead':>8}")
    for name, c in queues.items():
        print(f"{name:<20} {c.due:>8} {c.scheduled:>10} {c.running:>8} {c.dead:>8}")
    if not queues:
        print("(no queues yet)")
    print(f"\n{len(workers)} live worker(s)")
    for w in workers:
        print(
            f"  {w.worker}  host {w.host} pid {w.pid}  queues {','.join(w.queues)}  "
            f"running {w.running}/{w.concurrency}"
        )
    return 0
