"""``taskq jobs``: a paged listing of a queue's jobs by state, with their due times."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ..app import App
from ..brokers.base import LISTED_STATES, JobRecord, QueueCounts
from ..handle import status_of
from ..options import DEFAULT_QUEUE
from . import render
from .loader import load_app

DEFAULT_STATES = ("running", "due", "scheduled")  # what is listed without --state


def add_parser(sub: Any) -> None:
    """Register ``taskq jobs``."""
    jobs = sub.add_parser("jobs", help="list a queue's jobs by state, with their due times")
    jobs.add_argument("app", help="module:app")
    jobs.add_argument("--queue", default=DEFAULT_QUEUE)
    jobs.add_argument(
        "--state",
        choices=LISTED_STATES,
        default=None,
        help="only jobs in this state (default: running, then due, then scheduled); jobs "
        "whose retry is pending (status failed) are among the due and scheduled ones",
    )
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--offset", type=int, default=0)
    jobs.add_argument("--json", action="store_true", help="machine-readable output")
    jobs.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    render.check_page(args.offset, args.limit)
    app = load_app(args.app)
    states = (args.state,) if args.state else DEFAULT_STATES
    records = page(app, args.queue, states, args.offset, args.limit)
    now_ms = int(time.time() * 1000)
    rows = [row(r) for r in records]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no {'/'.join(states)} jobs in queue {args.queue!r}")
        return 0
    print(f"{'status':<10} {'id':<24} {'task':<20} {'attempts':>8}  when")
    for record, data in zip(records, rows, strict=True):
        print(
            f"{data['status']:<10} {data['id']:<24} {data['task'] or '?':<20} "
            f"{data['attempts']:>8}  {when(record, now_ms)}"
        )
    return 0


def page(app: App, queue: str, states: tuple[str, ...], offset: int, limit: int) -> list[JobRecord]:
    """Up to ``limit`` jobs from ``offset`` of the listing of ``states`` one after another."""
    counts: QueueCounts | None = app.inspector.counts(queue) if len(states) > 1 else None
    found: list[JobRecord] = []
    for state in states:
        if counts is not None:
            size = getattr(counts, state)
            if offset >= size:
                offset -= size
                continue
        found += app.inspector.jobs(queue, state, offset, limit - len(found))
        offset = 0
        if len(found) >= limit:
            break
    return found


def row(record: JobRecord) -> dict[str, Any]:
    """One job as plain data (no traceback: ``taskq dead show`` has it)."""
    data = render.describe(record)
    data.pop("traceback", None)
    return data | {
        "status": status_of(record),
        "due_at": render.iso(record.due_at_ms),
        "lease_until": render.iso(record.lease_until_ms),
        "finished_at": render.iso(record.finished_at_ms),
        "worker": record.worker,
        "cancel_requested": record.cancel_requested,
    }


def when(record: JobRecord, now_ms: int) -> str:
    """The time that matters for the job's state, absolute and relative."""
    if record.due_at_ms is not None:
        at, what = record.due_at_ms, "due"
    elif record.lease_until_ms is not None:
        at, what = record.lease_until_ms, f"on {record.worker or '?'}, lease until"
    elif record.finished_at_ms is not None:
        at, what = record.finished_at_ms, "dead since"
    else:
        return ""
    note = "  (cancel requested)" if record.cancel_requested else ""
    return f"{what} {render.iso(at)} ({render.relative(at, now_ms)}){note}"
