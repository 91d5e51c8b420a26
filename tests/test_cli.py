"""``python -m taskq`` in a subprocess: enqueue then run a worker, bad input as one line and
exit code 2, ``info`` and JSON logs."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import redis

from taskq import App
from tests.conftest import REDIS_URL, free_port
from tests.faults.helpers import (
    lines,
    processes,
    run_taskq,
    taskq_env,
    wait_for,
    write_tasks,
)

pytestmark = pytest.mark.redis

TASKS = """
@app.task
def add(a: int, b: int) -> int:
    record("added.txt", str(a + b))
    return a + b


@app.task(max_retries=0)
def greet(name: str, punctuation: str = "!") -> str:
    return f"Hello {name}{punctuation}"
"""

USAGE_ERROR = 2


@pytest.fixture
def project(tmp_path: Path, namespace: str, redis_client: redis.Redis) -> Path:
    """A directory holding ``tasks.py``: an App in this test's namespace on the test Redis."""
    write_tasks(tmp_path, namespace, TASKS)
    return tmp_path


@pytest.fixture
def env() -> dict[str, str]:
    return taskq_env(REDIS_URL)


def namespace_keys(client: redis.Redis, namespace: str) -> list[bytes]:
    return list(client.scan_iter(f"{namespace}:*"))


def test_enqueue_then_a_burst_worker_runs_the_job(
    project: Path, env: dict[str, str], redis_app: App
) -> None:
    enqueued = run_taskq(["enqueue", "tasks:app", "add", "2", "3"], project, env)
    assert enqueued.returncode == 0, enqueued.stderr
    job_id = enqueued.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", job_id) and enqueued.stderr == ""
    assert redis_app.job(job_id).status() == "due"

    worked = run_taskq(["worker", "tasks:app", "--burst", "--poll-interval", "50ms"], project, env)
    assert worked.returncode == 0, worked.stderr
    assert lines(project / "added.txt") == ["5"]
    assert redis_app.job(job_id).result(timeout=1) == 5
    assert "executed add" in worked.stderr


def test_enqueue_takes_keywords_a_job_id_and_a_delay(
    project: Path, env: dict[str, str], redis_app: App
) -> None:
    args = ["enqueue", "tasks:app", "greet", '"Ada"', "--kw", '{"punctuation": "?"}']
    args += ["--job-id", "greet-ada", "--delay", "1h"]
    enqueued = run_taskq(args, project, env)
    assert enqueued.returncode == 0, enqueued.stderr
    assert enqueued.stdout.strip() == "greet-ada"
    handle = redis_app.job("greet-ada")
    assert handle.status() == "scheduled"
    record = redis_app.inspector.get("default", "greet-ada")
    assert record is not None and record.body is not None
    # the same id again while the first one waits: not a second job
    again = run_taskq(args, project, env)
    assert again.returncode == 0, again.stderr
    assert redis_app.inspector.counts("default").scheduled == 1


@pytest.mark.parametrize(
    ("args", "extra_env", "culprit"),
    [
        (["enqueue", "tasks:app", "nope"], {}, "'nope'"),
        (["enqueue", "tasks:app", "add", "1", "{bad"], {}, "argument 2"),
        (["enqueue", "tasks:app", "add", "1", "2", "--kw", "[1]"], {}, "--kw"),
        (["enqueue", "tasks:app", "add", "1"], {}, "'b'"),  # does not bind to add(a, b)
        (["enqueue", "tasks:app", "add", "1", "2", "--delay", "soon"], {}, "--delay"),
        (["enqueue", "no_such_module:app", "add", "1", "2"], {}, "no_such_module"),
        (["enqueue", "tasks:nope", "add", "1", "2"], {}, "'nope'"),
        (["enqueue", "tasks:add", "add", "1", "2"], {}, "not a taskq.App"),
        (["enqueue", "not a module", "add"], {}, "module:app"),
        (["enqueue", "tasks:app", "add", "1", "2"], {"INTERVAL": "abc"}, "INTERVAL"),
        (["enqueue", "tasks:app", "add", "1", "2"], {"JOB_MAX_RETRY": "-1"}, "JOB_MAX_RETRY"),
        (["enqueue", "tasks:app", "add", "1", "2"], {"TASKQ_URL": "ftp://x/0"}, "ftp"),
        (["worker", "tasks:app", "--burst"], {"TASKQ_URL": "ftp://x/0"}, "ftp"),
        (["worker", "tasks:app", "--burst", "--lease", "-1"], {}, "--lease"),
        (["worker", "tasks:app", "--burst", "--lease", "0"], {}, "--lease='0' must be more"),
        (["worker", "tasks:app", "--burst"], {"INTERVAL": "0"}, "INTERVAL='0' must be more"),
        (["worker", "tasks:app", "--burst", "--poll-interval", "0s"], {}, "--poll-interval"),
        (["worker", "tasks:app", "--burst", "--prefetch", "-1"], {}, "prefetch"),
        (["worker", "no_such_module:app", "--burst"], {}, "no_such_module"),
        # checked before any child process starts (else each child fails and is restarted)
        (["worker", "tasks:app", "--processes", "2", "--lease", "abc"], {}, "--lease"),
        (["worker", "tasks:app", "--processes", "0"], {}, "processes"),
        (["info", "tasks:app"], {"INTERVAL": "abc"}, "INTERVAL"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_code_2(
    project: Path,
    env: dict[str, str],
    redis_client: redis.Redis,
    namespace: str,
    args: list[str],
    extra_env: dict[str, str],
    culprit: str,
) -> None:
    result = run_taskq(args, project, {**env, **extra_env})
    assert result.returncode == USAGE_ERROR, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("taskq: error: ")
    assert culprit in result.stderr
    assert namespace_keys(redis_client, namespace) == []  # nothing written


def test_a_bad_redis_db_is_one_line_and_exit_code_2(
    project: Path, redis_client: redis.Redis, namespace: str
) -> None:
    env = taskq_env(None, REDIS_ADDR="127.0.0.1:6379", REDIS_DB="x")
    result = run_taskq(["enqueue", "tasks:app", "add", "1", "2"], project, env)
    assert result.returncode == USAGE_ERROR, result.stderr
    assert result.stderr.count("\n") == 1 and "REDIS_DB='x'" in result.stderr
    assert namespace_keys(redis_client, namespace) == []


@pytest.mark.parametrize(
    ("source", "culprit"),
    [
        # the module exists; something it imports does not: do not blame the module itself
        ("import os\nimport tasks_broken_needs\n", "No module named 'tasks_broken_needs'"),
        ("import os\ndef broken(:\n    pass\n", "SyntaxError: invalid syntax"),
        ("import os\nraise RuntimeError('no settings')\n", "RuntimeError: no settings"),
    ],
)
def test_a_module_failing_to_import_is_one_line_with_the_error_and_its_line(
    project: Path, env: dict[str, str], source: str, culprit: str
) -> None:
    (project / "tasks_broken.py").write_text(source)
    result = run_taskq(["enqueue", "tasks_broken:app", "add", "1", "2"], project, env)
    assert result.returncode == USAGE_ERROR, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("taskq: error: importing module 'tasks_broken' failed: ")
    assert culprit in result.stderr
    assert f"{project / 'tasks_broken.py'}, line 2" in result.stderr


def test_a_worker_that_cannot_reach_its_broker_says_so_at_once_and_keeps_trying(
    project: Path, tmp_path: Path
) -> None:
    # a wrong URL must not look like an idle worker: the first lines say the broker is unreachable
    env = taskq_env(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    with processes() as spawn:
        args = ["worker", "tasks:app", "--log-format", "json"]
        worker = spawn(args, project, env, tmp_path / "worker.log")
        [said] = wait_for(
            lambda: [e for e in worker.events() if e.get("event") == "unreachable"],
            15,
            "the worker to say the broker is unreachable",
        )
        assert said["level"] == "error" and "cannot reach Redis" in said["message"], said
        assert worker.alive()  # it keeps trying: the broker may come up later
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.text()


def test_info_prints_counts_and_json(
    project: Path, env: dict[str, str], redis_app: App, namespace: str
) -> None:
    for args in (["add", "1", "2"], ["add", "3", "4", "--delay", "1h"], ["greet", '"x"']):
        assert run_taskq(["enqueue", "tasks:app", *args], project, env).returncode == 0

    text = run_taskq(["info", "tasks:app"], project, env)
    assert text.returncode == 0, text.stderr
    assert namespace in text.stdout
    row = next(line for line in text.stdout.splitlines() if line.startswith("default "))
    # due, scheduled, running, dead, succeeded and failed per minute
    assert row.split() == ["default", "2", "1", "0", "0", "0", "0"]
    assert "0 live worker(s)" in text.stdout

    as_json = run_taskq(["info", "tasks:app", "--json"], project, env)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    counts = {k: v for k, v in data["queues"]["default"].items() if k != "minutes"}
    assert counts == {
        "due": 2,
        "scheduled": 1,
        "running": 0,
        "dead": 0,
        "succeeded_per_minute": 0,
        "failed_per_minute": 0,
    }
    assert data["workers"] == []
    assert data["broker"].startswith("redis://")


def test_info_lists_a_live_worker_until_it_stops(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    def workers() -> list[dict[str, Any]]:
        result = run_taskq(["info", "tasks:app", "--json"], project, env)
        assert result.returncode == 0, result.stderr
        return list(json.loads(result.stdout)["workers"])

    args = ["worker", "tasks:app", "--queues", "default,mail", "--concurrency", "3"]
    with processes() as spawn:
        worker = spawn(args, project, env, tmp_path / "worker.log")
        [seen] = wait_for(workers, 15, "the worker's heartbeat")
        assert (seen["pid"], seen["queues"], seen["concurrency"]) == (
            worker.pid,
            ["default", "mail"],
            3,
        )
        text = run_taskq(["info", "tasks:app"], project, env).stdout
        assert f"pid {worker.pid}" in text and "1 live worker(s)" in text
        worker.signal(signal.SIGTERM)
        assert worker.wait(10) == 0, worker.text()
    assert workers() == []  # a stopped worker takes its record with it


@pytest.mark.parametrize(
    ("level", "events"), [("info", {"executed"}), ("debug", {"started", "executed"})]
)
def test_json_logs_are_one_object_a_line_with_job_fields(
    project: Path, env: dict[str, str], level: str, events: set[str]
) -> None:
    enqueued = run_taskq(["enqueue", "tasks:app", "add", "20", "22"], project, env)
    job_id = enqueued.stdout.strip()
    args = ["worker", "tasks:app", "--burst", "--poll-interval", "50ms", "--log-format", "json"]
    worked = run_taskq([*args, "--log-level", level], project, env)
    assert worked.returncode == 0, worked.stderr
    records = [json.loads(line) for line in worked.stderr.splitlines()]  # every line is JSON
    assert all({"ts", "level", "event", "message"} <= set(r) for r in records)
    mine = {r["event"]: r for r in records if r.get("job_id") == job_id}
    assert set(mine) == events  # one line per outcome; DEBUG adds the start of each attempt
    for record in mine.values():
        assert record["task"] == "add" and record["attempt"] == 1 and record["queue"] == "default"
    assert mine["executed"]["duration_ms"] >= 0
    assert lines(project / "added.txt") == ["42"]
