"""Real worker processes against the real Redis: many workers, kill -9, leases outliving jobs,
SIGTERM with and without enough grace, a second SIGTERM, and a job that kills its worker."""

from __future__ import annotations

import collections
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from taskq import App
from tests.conftest import REDIS_URL
from tests.faults.helpers import Proc, lines, processes, taskq_env, wait_for, write_tasks

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.timeout(60)]

TASKS = """
import asyncio


@app.task
def note(n: int) -> None:
    record("ran.txt", str(n))


@app.task
def noop() -> None:
    pass


@app.task
def slow(name: str, seconds: float) -> str:
    record("started.txt", f"{name} {os.getpid()}")
    time.sleep(seconds)
    record("finished.txt", f"{name} {os.getpid()}")
    return name


@app.task
async def aslow(name: str, seconds: float) -> str:
    record("started.txt", f"{name} {os.getpid()}")
    await asyncio.sleep(seconds)
    record("finished.txt", f"{name} {os.getpid()}")
    return name


@app.task(max_retries=10)  # max_crashes: the default, 3
def poison() -> None:
    record("poison.txt", str(os.getpid()))
    os.kill(os.getpid(), signal.SIGKILL)
"""

Spawn = Callable[..., Proc]


class Project:
    """A tasks module for this test's namespace, a test-side App on it, and worker processes."""

    def __init__(self, root: Path, app: App, spawn: Spawn, url: str = REDIS_URL) -> None:
        self.root = root
        self.app = app
        self.spawn = spawn
        self.env = taskq_env(url)
        self.count = 0
        write_tasks(root, app.namespace, TASKS)
        # the test side enqueues by name: same names and signatures, never run here
        for name, fn in (
            ("note", _note),
            ("noop", _noop),
            ("slow", _slow),
            ("aslow", _slow),
            ("poison", _poison),
        ):
            app.task(name=name)(fn)

    def worker(self, *flags: str, lease: str = "1s", grace: str = "5s") -> Proc:
        self.count += 1
        args = ["worker", "tasks:app", "--log-format", "json", "--log-level", "debug"]
        args += ["--poll-interval", "50ms", "--lease", lease, "--grace", grace, *flags]
        return self.spawn(args, self.root, self.env, self.root / f"worker-{self.count}.log")

    def lines(self, name: str) -> list[str]:
        return lines(self.root / name)

    def counts(self) -> tuple[int, int, int, int]:
        c = self.app.inspector.counts("default")
        return (c.due, c.scheduled, c.running, c.dead)


def _note(n: int) -> None: ...


def _noop() -> None: ...


def _slow(name: str, seconds: float) -> str:
    return name


def _poison() -> None: ...


@pytest.fixture
def project(tmp_path: Path, redis_app: App) -> Iterator[Project]:
    with processes() as spawn:
        yield Project(tmp_path, redis_app, spawn)


@pytest.fixture(params=["redis", "sqlite"])
def any_project(
    request: pytest.FixtureRequest, tmp_path: Path, make_app: Callable[[str], App]
) -> Iterator[Project]:
    """A project on Redis, then on the embedded SQLite file (workers share it as processes)."""
    app = make_app(request.param)
    url = REDIS_URL if request.param == "redis" else f"sqlite:///{tmp_path / 'taskq.db'}"
    with processes() as spawn:
        yield Project(tmp_path, app, spawn, url)


def started_by(project: Project, name: str, count: int = 1, timeout: float = 10) -> list[int]:
    """Wait until job ``name`` started ``count`` times; the pids of the workers that ran it."""

    def pids() -> list[int]:
        split = [line.split() for line in project.lines("started.txt")]
        return [int(pid) for job, pid in split if job == name]

    wait_for(lambda: len(pids()) >= count, timeout, f"job {name!r} to start {count} time(s)")
    return pids()


def events(proc: Proc, event: str, job_id: str) -> list[dict[str, object]]:
    return [e for e in proc.events() if e.get("event") == event and e.get("job_id") == job_id]


# -- (a) many workers, many jobs: each runs exactly once ---------------------------------------


def test_four_workers_run_two_thousand_jobs_exactly_once(any_project: Project) -> None:
    project = any_project
    project.app.tasks["note"].delay_many([((n,), {}) for n in range(2000)])
    workers = [project.worker("--burst", "--concurrency", "8", lease="5s") for _ in range(4)]
    for proc in workers:
        assert proc.wait(60) == 0, proc.text()
    ran = collections.Counter(project.lines("ran.txt"))
    assert len(ran) == 2000
    twice = {n: c for n, c in ran.items() if c != 1}
    assert not twice, f"jobs run more than once: {twice}"
    assert set(ran) == {str(n) for n in range(2000)}
    assert project.counts() == (0, 0, 0, 0)
    busy = [sum(1 for e in p.events() if e.get("event") == "executed") for p in workers]
    print(f"jobs run per worker: {busy}")
    assert sum(busy) == 2000


def test_burst_workers_under_a_supervisor_finish_and_exit(project: Project) -> None:
    project.app.tasks["note"].delay_many([((n,), {}) for n in range(200)])
    supervisor = project.worker("--burst", "--processes", "2")
    assert supervisor.wait(20) == 0, supervisor.text()
    assert sorted(project.lines("ran.txt"), key=int) == [str(n) for n in range(200)]
    assert supervisor.text().count("finished") == 2  # both children, neither restarted
    assert project.counts() == (0, 0, 0, 0)


# -- (b) kill -9 in the middle of a job --------------------------------------------------------


def test_a_job_whose_worker_is_killed_is_run_by_another_after_the_lease(
    any_project: Project,
) -> None:
    project = any_project
    workers = {p.pid: p for p in (project.worker(lease="2s"), project.worker(lease="2s"))}
    handle = project.app.tasks["slow"].delay("k", 1.0)
    [victim_pid] = started_by(project, "k")
    victim = workers.pop(victim_pid)
    killed = time.monotonic()
    victim.signal(signal.SIGKILL)
    assert victim.wait(5) == -signal.SIGKILL
    [survivor] = workers.values()

    started_by(project, "k", 2)
    recovered = time.monotonic() - killed
    print(f"run again {recovered:.2f}s after the kill (lease 2s)")
    assert recovered < 2 * 2, f"run again {recovered:.2f}s after the kill: over 2 x lease"
    assert handle.result(timeout=15) == "k"
    assert project.lines("finished.txt") == [f"k {survivor.pid}"]
    assert started_by(project, "k", 2) == [victim_pid, survivor.pid]
    [started] = events(survivor, "started", handle.id)
    assert started["attempt"] == 2  # the crash spent an attempt
    assert project.counts() == (0, 0, 0, 0)


def test_a_worker_killed_holding_ready_jobs_loses_none_of_them(any_project: Project) -> None:
    project = any_project
    note = project.app.tasks["note"]
    victim = project.worker("--concurrency", "1", "--prefetch", "4")
    # no-op jobs, far shorter than a claim's round trip (a job writing a file is not, on a
    # busy machine): the victim holds ready jobs from then on
    project.app.tasks["noop"].delay_many([((), {})] * 200)
    wait_for(lambda: project.counts() == (0, 0, 0, 0), 15, "the short jobs to run")
    handle = project.app.tasks["slow"].delay("k", 3.0)
    started_by(project, "k")
    note.delay_many([((n,), {}) for n in range(4)])  # claimed as ready behind "k"
    wait_for(lambda: project.counts()[2] == 5, 10, "the victim to hold 4 ready jobs")
    victim.signal(signal.SIGKILL)
    assert victim.wait(5) == -signal.SIGKILL
    survivor = project.worker()

    wait_for(lambda: len(project.lines("ran.txt")) == 4, 15, "the ready jobs to run again")
    ran = collections.Counter(project.lines("ran.txt"))
    assert ran == collections.Counter(str(n) for n in range(4)), "lost or run twice"
    assert handle.result(timeout=15) == "k"
    assert started_by(project, "k", 2)[1] == survivor.pid
    assert project.counts() == (0, 0, 0, 0)


# -- (c) a job five times longer than its lease ------------------------------------------------


def test_a_job_longer_than_its_lease_runs_once_while_its_lease_is_renewed(
    project: Project,
) -> None:
    workers = [project.worker(lease="500ms"), project.worker(lease="500ms")]
    handle = project.app.tasks["slow"].delay("long", 2.5)
    assert handle.result(timeout=15) == "long"
    assert len(project.lines("started.txt")) == 1
    assert len(project.lines("finished.txt")) == 1
    for proc in workers:
        assert not [e for e in proc.events() if e.get("event") == "lost"], proc.text()
    executed = [e for p in workers for e in events(p, "executed", handle.id)]
    assert len(executed) == 1 and executed[0]["attempt"] == 1
    assert project.counts() == (0, 0, 0, 0)


# -- (d), (e), (f) stop signals ----------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_lets_a_job_within_the_grace_period_finish(
    project: Project, signum: int
) -> None:
    worker = project.worker(grace="10s")
    handle = project.app.tasks["slow"].delay("graceful", 1.0)
    started_by(project, "graceful")
    worker.signal(signum)
    assert worker.wait(10) == 0, worker.text()
    assert project.lines("finished.txt") == [f"graceful {worker.pid}"]
    assert handle.result(timeout=1) == "graceful"
    assert len(events(worker, "executed", handle.id)) == 1
    assert project.counts() == (0, 0, 0, 0)


@pytest.mark.parametrize("task", ["slow", "aslow"])
def test_sigterm_hands_back_a_job_longer_than_the_grace_period(
    any_project: Project, task: str
) -> None:
    project = any_project
    first = project.worker(grace="500ms")
    handle = project.app.tasks[task].delay("handed-back", 2.5)
    started_by(project, "handed-back")
    record = project.app.inspector.get("default", handle.id)
    assert record is not None and (record.state, record.attempt) == ("running", 1)

    signalled = time.monotonic()
    first.signal(signal.SIGTERM)
    assert first.wait(10) == 0, first.text()
    took = time.monotonic() - signalled
    print(f"worker exited {took:.2f}s after SIGTERM with --grace 500ms")
    assert took < 3.5, f"exit took {took:.2f}s: longer than the grace period allows"
    record = project.app.inspector.get("default", handle.id)
    assert record is not None
    assert (record.state, record.attempt) == ("due", 0)  # handed back, its attempt not spent
    assert project.lines("finished.txt") == []  # the first worker never finished it

    second = project.worker()
    assert handle.result(timeout=15) == "handed-back"
    assert project.lines("finished.txt") == [f"handed-back {second.pid}"]
    [started] = events(second, "started", handle.id)
    assert started["attempt"] == 1


def test_a_second_sigterm_exits_at_once_and_the_job_returns_after_its_lease(
    project: Project,
) -> None:
    first = project.worker(lease="2s", grace="30s")
    handle = project.app.tasks["slow"].delay("abandoned", 2.0)
    started_by(project, "abandoned")
    first.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert first.alive()  # still waiting for its job (grace 30 s)
    signalled = time.monotonic()
    first.signal(signal.SIGTERM)
    code = first.wait(5)
    assert code != 0 and code != -signal.SIGTERM, f"exit code {code}"
    assert time.monotonic() - signalled < 2
    assert project.app.inspector.get("default", handle.id).state == "running"  # type: ignore[union-attr]

    second = project.worker(lease="2s")
    assert handle.result(timeout=15) == "abandoned"
    assert project.lines("finished.txt") == [f"abandoned {second.pid}"]
    [started] = events(second, "started", handle.id)
    assert started["attempt"] == 2  # the lost lease counted
    assert project.counts() == (0, 0, 0, 0)


# -- (g) a poison job that kills its worker every time -----------------------------------------


def test_a_job_that_kills_its_worker_is_buried_after_max_crashes(project: Project) -> None:
    poison = project.app.tasks["poison"].delay()
    notes = project.app.tasks["note"].delay_many([((n,), {}) for n in range(30)])
    flags = ("--concurrency", "1")
    workers = [project.worker(*flags, lease="500ms") for _ in range(2)]
    restarts = 0
    deadline = time.monotonic() + 20
    while poison.status() != "dead" or len(set(project.lines("ran.txt"))) < 30:
        assert time.monotonic() < deadline, f"stuck: {project.counts()}, {restarts} restarts"
        for i, proc in enumerate(workers):
            if not proc.alive():  # the supervisor: restart a worker that died
                assert proc.popen.returncode == -signal.SIGKILL, proc.text()
                workers[i] = project.worker(*flags, lease="500ms")
                restarts += 1
        time.sleep(0.05)

    assert len(project.lines("poison.txt")) == 3  # ran max_crashes (3) times, then never again
    assert restarts == 3
    record = {r.job_id: r for r in project.app.inspector.dead("default")}[poison.id]
    assert record.failure is not None and record.failure.reason == "crashed"
    assert set(project.lines("ran.txt")) == {str(n) for n in range(30)}
    for handle in notes:
        assert handle.status() == "succeeded"
    assert project.counts() == (0, 0, 0, 1)
