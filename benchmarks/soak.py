"""Soak test: ``python -m benchmarks.soak`` runs 50,000 jobs on 4 worker processes, kill -9s a
random one every few seconds (and starts a new one), then prints jobs lost, duplicates and the
worst recovery time. Exits 1 if any job was lost.

Every job appends its number to a file with one ``O_APPEND`` write when it is done, so a job
killed before that line counts as not run, and one killed after it but before its ack is run
again and counted as a duplicate. A kill's recovery time runs from the kill until every job the
killed worker held has run again to its end (its number written once more). A lease of 2 s
(``--lease``) keeps the run to a minute or two; recovery scales with the lease (the default 25 s
lease recovers in about 17-26 s, plus the wait for a free slot).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis

from taskq import App
from taskq.brokers.redis_keys import NamespaceKeys

URL_ENV, NAMESPACE_ENV, FILE_ENV = "TASKQ_SOAK_URL", "TASKQ_SOAK_NAMESPACE", "TASKQ_SOAK_FILE"
ROOT = Path(__file__).resolve().parent.parent


def make_app(url: str, namespace: str) -> App:
    """The soak's App: one task, ``mark(n, seconds)``, that sleeps then records ``n``."""
    soak = App(url, namespace=namespace, env={})

    @soak.task(name="mark", max_crashes=1000)  # kills are the point: never bury for them
    def mark(n: int, seconds: float) -> None:
        time.sleep(seconds)
        fd = os.open(os.environ[FILE_ENV], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{n}\n".encode())
        finally:
            os.close(fd)

    return soak


app = make_app(
    os.environ.get(URL_ENV, "redis://127.0.0.1:6379/0"), os.environ.get(NAMESPACE_ENV, "soak")
)


@dataclass
class Kill:
    """One kill -9: when, which worker, the jobs it held (with how many times each had run by
    then), and when they had all run again."""

    at: float
    worker: str
    held: dict[str, int]  # job number -> runs written when the worker was killed
    recovered_at: float | None = None


@dataclass
class Soak:
    """Worker processes on one namespace, killed and replaced on a schedule."""

    args: argparse.Namespace
    namespace: str
    marks: Path
    client: redis.Redis
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    numbers: dict[str, str] = field(default_factory=dict)  # job id -> its job number

    def env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        env.update(
            {URL_ENV: self.args.url, NAMESPACE_ENV: self.namespace, FILE_ENV: str(self.marks)}
        )
        return env

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115
        command = [sys.executable, "-m", "taskq", "worker", "benchmarks.soak:app"]
        command += [
            "--lease",
            f"{self.args.lease}s",
            "--concurrency",
            "8",
            "--log-level",
            "warning",
        ]
        proc = subprocess.Popen(command, env=self.env(), cwd=ROOT, stdout=log, stderr=log)
        log.close()
        self.workers.append(proc)
        return proc

    def owners(self) -> dict[str, str]:
        owners: dict[bytes, bytes] = self.client.hgetall(  # type: ignore[assignment]
            NamespaceKeys(self.namespace).queue("default").owners
        )
        return {k.decode(): v.decode() for k, v in owners.items()}

    def kill_one(self, rng: random.Random) -> None:
        victim = rng.choice([p for p in self.workers if p.poll() is None])
        victim.kill()
        killed = time.monotonic()
        victim.wait(10)
        # read after the kill: a dead worker's claims cannot change until its leases end
        tag = f":{victim.pid}:"
        held = [self.numbers[job] for job, worker in self.owners().items() if tag in worker]
        done = self.done()
        self.kills.append(Kill(killed, tag, {n: done[n] for n in held}))
        self.start_worker()

    def check_recoveries(self, done: collections.Counter[str]) -> None:
        """A kill is recovered once every job it held has run again (written once more)."""
        for kill in self.kills:
            if kill.recovered_at is None and all(done[n] > ran for n, ran in kill.held.items()):
                kill.recovered_at = time.monotonic()

    def done(self) -> collections.Counter[str]:
        return (
            collections.Counter(self.marks.read_text().split())
            if self.marks.exists()
            else (collections.Counter())
        )


def run(args: argparse.Namespace) -> int:
    namespace = f"soak-{uuid.uuid4().hex[:8]}"
    scratch = Path(tempfile.mkdtemp(prefix="taskq-soak-"))
    client = redis.Redis.from_url(args.url)
    soak = Soak(args, namespace, scratch / "marks.txt", client, scratch)
    producer = make_app(args.url, namespace)
    rng = random.Random(args.seed)
    print(f"soak: {args.jobs:,} jobs, {args.workers} workers, lease {args.lease:g}s, kill -9 every "
          f"~{args.kill_every:g}s, on {args.url} (logs in {scratch})")  # fmt: skip
    started = time.monotonic()
    try:
        for start in range(0, args.jobs, 5000):
            calls: list[tuple[tuple[int, float], dict[str, object]]] = [
                ((n, args.job_seconds), {}) for n in range(start, min(start + 5000, args.jobs))
            ]
            handles = producer.tasks["mark"].delay_many(calls)
            pairs = zip(handles, calls, strict=True)
            soak.numbers.update((h.id, str(n)) for h, ((n, _), _) in pairs)
        for _ in range(args.workers):
            soak.start_worker()
        next_kill = time.monotonic() + args.kill_every
        deadline = started + args.timeout
        while len(done := soak.done()) < args.jobs and time.monotonic() < deadline:
            soak.check_recoveries(done)
            if time.monotonic() >= next_kill:
                soak.kill_one(rng)
                next_kill = time.monotonic() + args.kill_every * rng.uniform(0.5, 1.5)
            time.sleep(0.05)
        while any(k.recovered_at is None for k in soak.kills) and time.monotonic() < deadline:
            soak.check_recoveries(soak.done())
            time.sleep(0.05)
    finally:
        for proc in soak.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in soak.workers:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        producer.close()
    return report(soak, args, time.monotonic() - started)


def report(soak: Soak, args: argparse.Namespace, took: float) -> int:
    done = soak.done()
    lost = args.jobs - len(done)
    duplicates = sum(count - 1 for count in done.values())
    # a worker killed holding nothing has nothing to recover
    times = [k.recovered_at - k.at for k in soak.kills if k.recovered_at is not None and k.held]
    held = sum(len(k.held) for k in soak.kills)
    print(f"kills: {len(soak.kills)} (jobs held by the killed workers: {held})")
    print(f"jobs lost: {lost}")
    print(f"duplicates: {duplicates} (runs of jobs whose worker was killed before the ack)")
    if times:
        print(f"worst recovery: {max(times):.2f}s (median {statistics.median(times):.2f}s, "
              f"lease {args.lease:g}s)")  # fmt: skip
    unrecovered = sum(1 for k in soak.kills if k.recovered_at is None)
    if unrecovered:
        print(f"kills never recovered: {unrecovered}")
    print(f"took {took:.1f}s")
    ns = soak.namespace
    keys = list(soak.client.scan_iter(f"{ns}:*", count=1000))
    for start in range(0, len(keys), 500):
        soak.client.delete(*keys[start : start + 500])
    soak.client.close()
    return 1 if lost or unrecovered else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    p.add_argument("--url", default="redis://127.0.0.1:6379/0", help="a Redis URL")
    p.add_argument("--jobs", type=int, default=50_000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--lease", type=float, default=2.0, help="seconds (default 2)")
    p.add_argument("--kill-every", type=float, default=3.0, help="seconds between kills, ±50%%")
    p.add_argument("--job-seconds", type=float, default=0.01, help="how long each job sleeps")
    p.add_argument("--timeout", type=float, default=600.0, help="give up after this long")
    p.add_argument("--seed", type=int, default=1)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
