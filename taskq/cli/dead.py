"""``taskq dead``: list, show, retry and purge jobs in the dead-letter store."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..app import App
from ..brokers.base import JobRecord
from ..errors import ConfigError, JobNotFound
from ..job import Job
from ..serialization import DecodeError
from . import render
from .loader import load_app

PAGE = 500  # dead jobs read per call while scanning a queue


def add_parser(sub: Any) -> None:
    """Register ``taskq dead {list,show,retry,purge}``."""
    dead = sub.add_parser("dead", help="the dead-letter store: list, show, retry, purge")
    verbs = dead.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", help="dead jobs, newest first")
    show = verbs.add_parser("show", help="one dead job with its error and traceback")
    retry = verbs.add_parser("retry", help="make dead jobs due again with fresh attempts")
    purge = verbs.add_parser("purge", help="delete every dead job of the queue")
    for verb in (listing, show, retry, purge):
        verb.add_argument("app", help="module:app")
        verb.add_argument("--queue", default="default")
        verb.add_argument("--json", action="store_true", help="machine-readable output")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    show.add_argument("job_id")
    retry.add_argument("job_ids", nargs="*", metavar="JOB_ID")
    retry.add_argument("--all", action="store_true", help="every dead job of the queue")
    retry.add_argument("--task", default=None, help="with --all: only jobs of this task")
    dead.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    _check(args)
    app = load_app(args.app)
    verb = {"list": _list, "show": _show, "retry": _retry, "purge": _purge}[args.verb]
    return verb(app, args)


def _check(args: argparse.Namespace) -> None:
    """Refuse flags that do not go together, before the broker is opened."""
    if args.verb == "list":
        render.check_page(args.offset, args.limit)
    if args.verb != "retry":
        return
    if args.all and args.job_ids:
        raise ConfigError("give job ids or --all, not both")
    if args.task is not None and not args.all:
        raise ConfigError(
            f"--task works only with --all: taskq dead retry {args.app} --all --task {args.task}"
        )
    if not args.all and not args.job_ids:
        raise ConfigError("give the ids of the dead jobs to retry, or --all for every one")


def describe(record: JobRecord) -> dict[str, Any]:
    """A dead job as plain data: its task, arguments, failure and when it died."""
    return render.describe(record) | {"dead_at": render.iso(record.finished_at_ms)}


def _all_dead(app: App, queue: str) -> list[JobRecord]:
    found: list[JobRecord] = []
    while page := app.inspector.dead(queue, len(found), PAGE):
        found += page
    return found


def _list(app: App, args: argparse.Namespace) -> int:
    rows = [describe(r) for r in app.inspector.dead(args.queue, args.offset, args.limit)]
    if args.json:
        _print_json([{k: v for k, v in row.items() if k != "traceback"} for row in rows])
        return 0
    if not rows:
        print(f"no dead jobs in queue {args.queue!r}")
    for row in rows:
        task, reason = row.get("task") or "?", row.get("reason", "?")
        print(f"{row['id']}  {task}  {reason}  {row['dead_at']}  {row.get('error', '')}")
    return 0


def _show(app: App, args: argparse.Namespace) -> int:
    record = app.inspector.get(args.queue, args.job_id)
    if record is None or record.state != "dead":
        raise JobNotFound(f"no dead job {args.job_id!r} in queue {args.queue!r}")
    row = describe(record)
    if args.json:
        _print_json(row)
        return 0
    traceback = row.pop("traceback", "")
    for key, value in row.items():
        print(f"{key:>12}: {'?' if value is None else value}")  # as `dead list` shows it
    if traceback:
        print(f"\n{traceback.rstrip()}")
    return 0


def _retry(app: App, args: argparse.Namespace) -> int:
    queue, missing = args.queue, []
    if args.all:
        ids = [r.job_id for r in _all_dead(app, queue) if _is_task(r, args.task)]
    else:
        ids = list(dict.fromkeys(args.job_ids))
        missing = [i for i in ids if not _is_dead(app.inspector.get(queue, i))]
        ids = [i for i in ids if i not in missing]
    moved = app.inspector.requeue_dead(queue, ids)
    if args.json:
        print(json.dumps({"retried": moved, "not_found": missing}))
    else:
        print(f"{moved} job(s) due again")
    if missing:
        where = f"not in the dead-letter store of queue {queue!r}, so not retried"
        print(f"taskq: {where}: {', '.join(missing)}", file=sys.stderr)
    if moved < len(ids):  # retried or purged by someone else since they were read
        print(
            f"taskq: {len(ids) - moved} job(s) left the dead-letter store meanwhile",
            file=sys.stderr,
        )
    return 0 if moved == len(ids) and not missing else 1


def _is_dead(record: JobRecord | None) -> bool:
    return record is not None and record.state == "dead"


def _is_task(record: JobRecord, task: str | None) -> bool:
    if task is None:
        return True
    try:
        return Job.decode(record.body or b"", record.job_id, record.queue).task == task
    except DecodeError:
        return False


def _purge(app: App, args: argparse.Namespace) -> int:
    purged = app.inspector.purge_dead(args.queue)
    print(json.dumps({"purged": purged}) if args.json else f"{purged} dead job(s) deleted")
    return 0


def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    print()
