"""``taskq info``: per queue counts and per-minute outcomes, and the live workers; ``--watch``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from ..app import App
from ..brokers.base import MinuteCounts, WorkerInfo
from ..config import mask_url, parse_duration
from .loader import load_app
from .render import ago, iso

MINUTES = 5  # per-minute counts shown in --json


def add_parser(sub: Any) -> None:
    """Register ``taskq info``."""
    info = sub.add_parser(
        "info", help="per queue: due, scheduled, running, dead, per-minute outcomes; workers"
    )
    info.add_argument("app", help="module:app")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.add_argument("--watch", action="store_true", help="refresh until interrupted")
    info.add_argument("--interval", default="2s", help="with --watch: time between refreshes")
    info.add_argument(
        "--count", type=int, default=None, help="with --watch: stop after this many refreshes"
    )
    info.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    if not args.watch:
        show(app, args.json)
        return 0
    interval = parse_duration(args.interval, "--interval", positive=True)
    shown = 0
    try:
        while args.count is None or shown < args.count:
            if shown:
                time.sleep(interval)
            if not args.json and sys.stdout.isatty():
                print("\x1b[H\x1b[2J", end="")  # clear the terminal: a refreshing view
            show(app, args.json, compact=True)
            sys.stdout.flush()
            shown += 1
    except BrokenPipeError:  # e.g. `taskq info --watch --json | head -1`: the reader is done
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def per_minute(minutes: list[MinuteCounts], now_ms: int) -> tuple[int, int]:
    """Succeeded and failed in about the last 60 s: this minute's counts plus the share of the
    previous minute's still within 60 s (a sliding-window estimate from two buckets)."""
    if not minutes:
        return 0, 0
    current, previous = minutes[0], minutes[1] if len(minutes) > 1 else None
    share = 1 - min(max((now_ms - current.minute_ms) / 60_000, 0.0), 1.0)
    succeeded = current.succeeded + (previous.succeeded * share if previous else 0)
    failed = current.failed + (previous.failed * share if previous else 0)
    return round(succeeded), round(failed)


def snapshot(app: App) -> dict[str, Any]:
    """Everything ``taskq info`` shows, as plain data."""
    inspector = app.inspector
    now_ms = int(time.time() * 1000)
    queues: dict[str, Any] = {}
    for name in inspector.queues():
        minutes = inspector.rates(name, MINUTES)
        succeeded, failed = per_minute(minutes, now_ms)
        queues[name] = vars(inspector.counts(name)) | {
            "succeeded_per_minute": succeeded,
            "failed_per_minute": failed,
            "minutes": [
                {"minute": iso(m.minute_ms), "succeeded": m.succeeded, "failed": m.failed}
                for m in minutes
            ],
        }
    workers = [_worker(w, now_ms) for w in inspector.workers()]
    return {
        "broker": mask_url(app.broker.url),
        "namespace": app.namespace,
        "queues": queues,
        "workers": workers,
    }


def _worker(w: WorkerInfo, now_ms: int) -> dict[str, Any]:
    return vars(w) | {
        "queues": list(w.queues),
        "started_at": iso(w.started_at_ms),
        "seen_at": iso(w.seen_at_ms),
        "seen_ago_s": round(max(now_ms - w.seen_at_ms, 0) / 1000, 1),
    }


def show(app: App, as_json: bool, compact: bool = False) -> None:
    """Print one view: a table, or a JSON object (one line when ``compact``)."""
    data = snapshot(app)
    if as_json:
        print(json.dumps(data, separators=(",", ":")) if compact else json.dumps(data, indent=2))
        return
    print(f"broker  {data['broker']}  namespace {data['namespace']}")
    head = f"{'queue':<20} {'due':>8} {'scheduled':>10} {'running':>8} {'dead':>8}"
    print(f"{head} {'succeeded/min':>14} {'failed/min':>11}")
    for name, q in data["queues"].items():
        counts = f"{q['due']:>8} {q['scheduled']:>10} {q['running']:>8} {q['dead']:>8}"
        rates = f"{q['succeeded_per_minute']:>14} {q['failed_per_minute']:>11}"
        print(f"{name:<20} {counts} {rates}")
    if not data["queues"]:
        print("(no queues yet)")
    print(f"\n{len(data['workers'])} live worker(s)")
    for w in data["workers"]:
        print(
            f"  {w['worker']}  host {w['host']} pid {w['pid']}  queues {','.join(w['queues'])}  "
            f"running {w['running']}/{w['concurrency']}  heartbeat {ago(w['seen_ago_s'])}"
        )
