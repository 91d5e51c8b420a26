"""Command line: ``python -m benchmarks [--url URL ...] [--quick] [--only NAME] [--repeat N]``."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import cast

from taskq.brokers import open_broker
from taskq.brokers.base import Inspector

from . import enqueue, footprint, lateness, recovery, server, throughput
from .common import ROOT, Row, Settings, delete_namespace, make_scratch, skipped
from .floors import Floor, floor_for
from .table import render, side_by_side
from .tasks import DEFAULT_URL

SCENARIOS: dict[str, Callable[[Settings, Floor], list[Row]]] = {
    "enqueue": enqueue.run,
    "worker": throughput.run,
    "lateness": lambda s, _floor: lateness.run(s),
    "memory": footprint.run,
    "recovery": lambda s, _floor: recovery.run(s),
    "redis-cpu": lambda s, _floor: server.run(s),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument(
        "--url",
        action="append",
        help=f"a broker URL (repeatable; default: {DEFAULT_URL}, then the embedded SQLite broker"
        " on a scratch file); with two or more, a last table puts their figures side by side",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, one repetition (smoke test)")
    p.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        metavar="NAME",
        help=f"run only this scenario (repeatable): {', '.join(SCENARIOS)}",
    )
    p.add_argument("--repeat", type=int, default=None, help="repetitions (default 3; --quick 1)")
    return p.parse_args(argv)


def probe(settings: Settings) -> str | None:
    """Why the broker cannot be used (its module may not import yet), or None when it answers."""
    namespace = f"{settings.run_id}-probe"
    try:
        broker = open_broker(settings.url, namespace)
        try:
            cast(Inspector, broker).queues()  # one round trip: is the server there?
        finally:
            broker.close()
        delete_namespace(settings, namespace)
    except Exception as exc:  # an unfinished broker module may fail in any way
        return f"{type(exc).__name__}: {exc}"
    return None


def revision() -> str:
    """The checkout measured: ``git describe --always --dirty``, or ``unknown``."""
    try:
        command = ["git", "-C", str(ROOT), "describe", "--always", "--dirty"]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    names = args.only or list(SCENARIOS)
    scratch = make_scratch()
    urls = args.url or [DEFAULT_URL, f"sqlite:///{scratch / 'bench.db'}"]
    tables: list[tuple[str, list[Row]]] = []
    failed = False  # a scenario that raised, or a broker that cannot be opened: exit status 1
    try:
        for url in urls:
            settings = Settings(url, args.quick, repeat, scratch)
            started = time.perf_counter()
            rows, ok = run_on(settings, names)
            failed = failed or not ok
            mode = "quick, " if args.quick else ""
            print(
                f"taskq benchmarks at {revision()} on {url} ({settings.kind}); "
                f"{mode}median of {repeat} run(s); {time.perf_counter() - started:.0f}s"
            )
            print(render(rows), end="\n\n", flush=True)
            tables.append((url, rows))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if len(tables) > 1:
        print("side by side (figures; ratios to each broker's own floor are in its table)")
        print(side_by_side(tables))
    return 1 if failed else 0


def run_on(settings: Settings, names: list[str]) -> tuple[list[Row], bool]:
    """The rows of every scenario named, on one broker; ``False`` if one failed or the broker
    cannot be opened."""
    rows: list[Row] = []
    ok = True
    problem = probe(settings)
    try:
        if problem is not None:
            return [skipped(name, f"broker cannot be opened ({problem})") for name in names], False
        floor = floor_for(settings)
        try:
            for name in names:
                print(f"running {name} on {settings.kind} ...", file=sys.stderr, flush=True)
                try:
                    rows += SCENARIOS[name](settings, floor)
                except Exception as exc:
                    ok = False
                    traceback.print_exc()
                    rows.append(skipped(name, f"failed: {type(exc).__name__}: {exc}"))
        finally:
            floor.close()
    finally:
        for namespace in settings.namespaces:
            delete_namespace(settings, namespace)
    return rows, ok


if __name__ == "__main__":
    sys.exit(main())
