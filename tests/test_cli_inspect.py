"""Snapshots of ``taskq info``, ``taskq jobs`` and ``taskq dead`` in text and JSON, on every
broker, run in-process against a queue holding a job in each state (ids fixed, times masked)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskq import App
from taskq.brokers.base import Bury, EnqueueItem, Failure, QueueCounts, WorkerInfo
from taskq.cli.loader import load_app
from taskq.cli.main import main
from taskq.worker import Worker, WorkerOptions

from .conftest import REDIS_URL, delete_namespace, redis_or_skip

TASKS = """
from taskq import App

app = App({url!r}, namespace={namespace!r}, env={{}})


@app.task(max_retries=0)
def add(a: int, b: int) -> int:
    return a + b


@app.task(max_retries=0)
def fail(message: str) -> None:
    raise ValueError(message)
"""

TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
RELATIVE = re.compile(r"\((in \S+|\S+ ago)\)")
AGO = re.compile(r"heartbeat \S+ ago")


@pytest.fixture(params=["memory", "sqlite", "redis"])
def reference(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """``module:app`` of a tasks module on one broker, its queue holding a job in each state."""
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    client = redis_or_skip() if request.param == "redis" else None
    url = {"memory": "memory://", "sqlite": f"sqlite:///{tmp_path / 'q.db'}"}
    module = f"tasks_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        TASKS.format(url=url.get(request.param, REDIS_URL), namespace=namespace)
    )
    sys.path.insert(0, str(tmp_path))
    app = load_app(f"{module}:app")
    try:
        _fill(app)
        yield f"{module}:app"
    finally:
        app.close()
        sys.path.remove(str(tmp_path))
        sys.modules.pop(module, None)
        if client is not None:
            delete_namespace(client, namespace)


def _fill(app: App) -> None:
    add, fail = app.tasks["add"], app.tasks["fail"]
    add.with_options(job_id="done-1").delay(1, 2)
    fail.with_options(job_id="dead-1").delay("boom")
    options = WorkerOptions(burst=True, poll_interval=0.05, heartbeat=1.0)
    asyncio.run(asyncio.wait_for(Worker(app, options).run(), 20))
    add.with_options(job_id="run-1").delay(0, 0)
    assert app.broker.claim(["default"], 1, 60_000, "host-1:4242:abc").jobs
    time.sleep(0.002)  # due times in the order written
    add.with_options(job_id="due-1").delay(2, 3)
    time.sleep(0.002)
    add.with_options(job_id="due-2").delay(3, 4)
    add.with_options(job_id="later-1").delay_by(3600, 5, 6)
    started = int(time.time() * 1000)
    info = WorkerInfo("host-1:4242:abc", "host-1", 4242, ("default",), 8, 1, started)
    app.inspector.heartbeat(info, 60_000)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    out = AGO.sub("heartbeat <ago>", RELATIVE.sub("(<rel>)", TIME.sub("<time>", out)))
    return re.sub(r"broker  \S+  namespace \S+", "broker  <broker>  namespace <ns>", out)


def as_json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    return json.loads(run(capsys, *args, "--json"))


INFO = """\
broker  <broker>  namespace <ns>
queue                     due  scheduled  running     dead  succeeded/min  failed/min
default                     2          1        1        1              1           1

1 live worker(s)
  host-1:4242:abc  host host-1 pid 4242  queues default  running 1/8  heartbeat <ago>
"""


def test_info_text(reference: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "info", reference) == INFO


def test_info_json(reference: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = as_json(capsys, "info", reference)
    assert data["broker"] and data["namespace"].startswith("test-")
    queue = data["queues"]["default"]
    minutes = queue.pop("minutes")
    assert queue == {
        "due": 2,
        "scheduled": 1,
        "running": 1,
        "dead": 1,
        "succeeded_per_minute": 1,
        "failed_per_minute": 1,
    }
    assert len(minutes) == 5 and minutes[0]["minute"] == "<time>"
    assert sum(m["succeeded"] for m in minutes) == 1 and sum(m["failed"] for m in minutes) == 1
    [worker] = data["workers"]
    assert worker["seen_ago_s"] < 30
    del worker["seen_ago_s"]
    assert worker == {
        "worker": "host-1:4242:abc",
        "host": "host-1",
        "pid": 4242,
        "queues": ["default"],
        "concurrency": 8,
        "running": 1,
        "started_at_ms": worker["started_at_ms"],
        "seen_at_ms": worker["seen_at_ms"],
        "started_at": "<time>",
        "seen_at": "<time>",
    }


def test_info_watch_refreshes(reference: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "info", reference, "--watch", "--interval", "50ms", "--count", "3")
    assert out.count("live worker(s)") == 3
    lines = run(
        capsys, "info", reference, "--watch", "--interval", "10ms", "--count", "2", "--json"
    )
    assert [json.loads(line)["queues"]["default"]["due"] for line in lines.splitlines()] == [2, 2]


JOBS = """\
status     id                       task                 attempts  when
running    run-1                    add                         1  on host-1:4242:abc, lease until <time> (<rel>)
due        due-1                    add                         0  due <time> (<rel>)
due        due-2                    add                         0  due <time> (<rel>)
scheduled  later-1                  add                         0  due <time> (<rel>)
"""  # noqa: E501


def test_jobs_text(reference: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "jobs", reference) == JOBS
    assert (
        run(capsys, "jobs", reference, "--offset", "1", "--limit", "2").splitlines()[1:]
        == (JOBS.splitlines()[2:4])
    )
    dead = run(capsys, "jobs", reference, "--state", "dead").splitlines()
    assert dead[1].split() == ["dead", "dead-1", "fail", "1", "dead", "since", "<time>", "(<rel>)"]
    assert run(capsys, "jobs", reference, "--queue", "none") == (
        "no running/due/scheduled jobs in queue 'none'\n"
    )


def test_jobs_json(reference: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = as_json(capsys, "jobs", reference)
    assert [(r["id"], r["status"]) for r in rows] == [
        ("run-1", "running"),
        ("due-1", "due"),
        ("due-2", "due"),
        ("later-1", "scheduled"),
    ]
    assert rows[1] == {
        "id": "due-1",
        "queue": "default",
        "attempts": 0,
        "task": "add",
        "args": "(2, 3)",
        "kwargs": "{}",
        "status": "due",
        "due_at": "<time>",
        "lease_until": None,
        "finished_at": None,
        "worker": None,
        "cancel_requested": False,
    }
    assert rows[0]["worker"] == "host-1:4242:abc" and rows[0]["lease_until"] == "<time>"
    [scheduled] = as_json(capsys, "jobs", reference, "--state", "scheduled")
    assert scheduled["id"] == "later-1"


def test_dead_text(reference: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "dead", "list", reference) == (
        "dead-1  fail  exhausted  <time>  ValueError: boom\n"
    )
    shown = run(capsys, "dead", "show", reference, "dead-1")
    head, _, traceback = shown.partition("\n\n")
    assert head.splitlines() == [
        "          id: dead-1",
        "       queue: default",
        "    attempts: 1",
        "        task: fail",
        "        args: ('boom',)",
        "      kwargs: {}",
        "      reason: exhausted",
        "       error: ValueError: boom",
        "     dead_at: <time>",
    ]
    assert traceback.startswith("Traceback") and "ValueError: boom" in traceback


# the dead job of the reference project, as `taskq dead list/show --json` give it
DEAD_ROW = {
    "id": "dead-1",
    "queue": "default",
    "attempts": 1,
    "task": "fail",
    "args": "('boom',)",
    "kwargs": "{}",
    "reason": "exhausted",
    "error": "ValueError: boom",
    "dead_at": "<time>",
}


def test_dead_json_and_retry_back_to_due(
    reference: str, capsys: pytest.CaptureFixture[str]
) -> None:
    [row] = as_json(capsys, "dead", "list", reference)
    assert row == DEAD_ROW
    retried = as_json(capsys, "dead", "retry", reference, "dead-1")
    assert retried == {"retried": 1, "not_found": []}
    due = as_json(capsys, "jobs", reference, "--state", "due")
    # put back with a fresh attempt count: due, not failed (no attempt of it failed since)
    assert [(r["id"], r["status"]) for r in due][-1] == ("dead-1", "due")
    assert as_json(capsys, "dead", "list", reference) == []
    assert run(capsys, "dead", "purge", reference) == "0 dead job(s) deleted\n"


def test_dead_show_json(reference: str, capsys: pytest.CaptureFixture[str]) -> None:
    row = as_json(capsys, "dead", "show", reference, "dead-1")
    assert row.pop("traceback").startswith("Traceback")
    assert row == DEAD_ROW


def _bury_in(app: App, queue: str, task: str, job_id: str) -> None:
    """Enqueue a job of ``task`` to ``queue``, claim it and bury it, as an exhausted job is."""
    args = ("boom",) if task == "fail" else (1, 2)
    app.tasks[task].with_options(job_id=job_id, queue=queue).delay(*args)
    [claimed] = app.broker.claim([queue], 1, 60_000, "w").jobs
    failure = Failure("ValueError", "boom", "", "exhausted")
    assert app.broker.bury([Bury(claimed.lease, failure)]) == [True]
    time.sleep(0.002)  # dead times in the order written


def test_dead_retry_all_of_one_task_and_purge(
    reference: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = load_app(reference)
    for task, job_id in [("fail", "f-1"), ("add", "a-1"), ("fail", "f-2"), ("add", "a-2")]:
        _bury_in(app, "other", task, job_id)
    retried = run(capsys, "dead", "retry", reference, "--queue", "other", "--all", "--task", "add")
    assert retried == "2 job(s) due again\n"
    assert sorted(r.job_id for r in app.inspector.jobs("other", "due")) == ["a-1", "a-2"]
    assert [r["id"] for r in as_json(capsys, "dead", "list", reference, "--queue", "other")] == [
        "f-2",
        "f-1",
    ]
    assert run(capsys, "dead", "purge", reference, "--queue", "other") == "2 dead job(s) deleted\n"
    assert app.inspector.counts("other") == QueueCounts(due=2, scheduled=0, running=0, dead=0)
    assert [r["id"] for r in as_json(capsys, "dead", "list", reference)] == ["dead-1"]


def test_dead_list_pages_alike_on_every_broker(
    reference: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = load_app(reference)
    for n in range(3):
        _bury_in(app, "other", "add", f"a-{n}")
    listed = [
        [r["id"] for r in as_json(capsys, "dead", "list", reference, "--queue", "other", *page)]
        for page in (["--limit", "1"], ["--offset", "1", "--limit", "5"], ["--offset", "3"])
    ]
    assert listed == [["a-2"], ["a-1", "a-0"], []]


def fails(capsys: pytest.CaptureFixture[str], code: int, *args: str) -> tuple[str, str]:
    """Run a command that should exit with ``code``; its stdout and stderr."""
    assert main(list(args)) == code
    out, err = capsys.readouterr()
    return out, err


@pytest.mark.parametrize(
    "page", [["--limit", "0"], ["--limit", "-1"], ["--offset", "-1"], ["--offset", "-5"]]
)
def test_dead_list_refuses_a_bad_page_in_one_line(
    reference: str, capsys: pytest.CaptureFixture[str], page: list[str]
) -> None:
    out, err = fails(capsys, 2, "dead", "list", reference, *page)
    assert (out, err) == ("", "taskq: error: --limit must be >= 1 and --offset >= 0\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give the ids of the dead jobs to retry, or --all for every one"),
        (
            ["--task", "add"],
            "--task works only with --all: taskq dead retry {} --all --task add",
        ),
        (["dead-1", "--task", "add"], "--task works only with --all"),
        (["dead-1", "--all"], "give job ids or --all, not both"),
    ],
)
def test_dead_retry_says_which_flags_are_missing_or_clash(
    reference: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out, err = fails(capsys, 2, "dead", "retry", reference, *args)
    assert out == "" and err.startswith(f"taskq: error: {message.format(reference)}")
    assert err.count("\n") == 1
    assert load_app(reference).job("dead-1").status() == "dead"  # nothing retried


def test_dead_retry_names_the_ids_it_did_not_find(
    reference: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = fails(capsys, 1, "dead", "retry", reference, "nope", "dead-1", "due-1", "nope")
    assert out == "1 job(s) due again\n"
    assert err == (
        "taskq: not in the dead-letter store of queue 'default', so not retried: nope, due-1\n"
    )
    out, err = fails(capsys, 1, "dead", "retry", reference, "dead-1", "--json")
    assert json.loads(out) == {"retried": 0, "not_found": ["dead-1"]}
    out, err = fails(capsys, 0, "dead", "retry", reference, "--all", "--json")
    assert (json.loads(out), err) == ({"retried": 0, "not_found": []}, "")


def test_an_undecodable_dead_job_reads_well(
    reference: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = load_app(reference)
    app.submit([EnqueueItem("bad", "garbage-1", b"\xc1 junk")])
    options = WorkerOptions(queues=("bad",), burst=True, poll_interval=0.05, heartbeat=1.0)
    asyncio.run(asyncio.wait_for(Worker(app, options).run(), 20))
    error = "DecodeError: not valid msgpack (FormatError); its 6 bytes are kept"
    assert run(capsys, "dead", "list", reference, "--queue", "bad") == (
        f"garbage-1  ?  undecodable  <time>  {error}\n"
    )
    assert run(capsys, "dead", "show", reference, "garbage-1", "--queue", "bad").splitlines() == [
        "          id: garbage-1",
        "       queue: bad",
        "    attempts: 1",
        "        task: ?",
        "        body: c1206a756e6b",
        "decode_error: not valid msgpack (FormatError)",
        "      reason: undecodable",
        f"       error: {error}",
        "     dead_at: <time>",
    ]
    row = as_json(capsys, "dead", "show", reference, "garbage-1", "--queue", "bad")
    assert (row["task"], row["error"]) == (None, error)
