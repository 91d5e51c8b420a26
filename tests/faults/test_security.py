"""An ACL user confined to one namespace, passwords that never reach logs, errors or ``taskq
info``, and a package that never unpickles or evaluates anything."""

from __future__ import annotations

import ast
import signal
import time
from pathlib import Path

import pytest
import redis

import taskq
from taskq import App, BrokerError
from taskq.config import mask_url
from tests.conftest import RedisServer
from tests.faults.helpers import processes, run_taskq, taskq_env, wait_for, write_tasks

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.timeout(60)]

PASSWORD = "pw-Zq81x"
TASKS = """
@app.task
def note(tag: str) -> None:
    record("ran.txt", tag)
"""


def acl_url(server: RedisServer, user: str = "ns1") -> str:
    return f"redis://{user}:{PASSWORD}@127.0.0.1:{server.port}/0"


@pytest.fixture
def acl_redis(private_redis: RedisServer) -> RedisServer:
    """A private Redis with user ns1, allowed every command on ns1's keys and channels only."""
    admin = redis.Redis(port=private_redis.port)
    admin.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", "ns1", "on", f">{PASSWORD}", "~ns1:*", "&ns1:*", "+@all"
    )
    admin.close()
    return private_redis


def test_a_user_confined_to_ns1_runs_a_worker_for_ns1(
    acl_redis: RedisServer, tmp_path: Path
) -> None:
    url = acl_url(acl_redis)
    write_tasks(tmp_path, "ns1", TASKS)
    env = taskq_env(url)
    for tag in ("a", "b", "c"):
        assert (
            run_taskq(["enqueue", "tasks:app", "note", f'"{tag}"'], tmp_path, env).returncode == 0
        )
    done = run_taskq(["worker", "tasks:app", "--burst", "--log-level", "debug"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert sorted((tmp_path / "ran.txt").read_text().split()) == ["a", "b", "c"]
    info = run_taskq(["info", "tasks:app"], tmp_path, env)
    assert info.returncode == 0, info.stderr
    for output in (done.stderr, done.stdout, info.stdout, info.stderr):
        assert PASSWORD not in output
    assert "ns1:***@" in done.stderr.splitlines()[0] and "ns1:***@" in info.stdout


def test_a_user_confined_to_ns1_cannot_touch_ns2(acl_redis: RedisServer, tmp_path: Path) -> None:
    admin = App(acl_redis.url, namespace="ns2", env={})
    admin.task(name="note")(_note)
    waiting = admin.tasks["note"].delay("ns2-job")
    confined = App(acl_url(acl_redis), namespace="ns2", env={})
    confined.task(name="note")(_note)
    try:
        with pytest.raises(BrokerError) as refused:
            confined.tasks["note"].delay("sneaky")
        assert "no permissions" in str(refused.value) and PASSWORD not in str(refused.value)
        with pytest.raises(BrokerError):
            confined.broker.claim(["default"], 10, 30_000, "intruder")
        client = redis.Redis.from_url(acl_url(acl_redis))
        for command in (("GET", "ns2:x"), ("SET", "ns2:x", "1"), ("SUBSCRIBE", "ns2:{q}:wake")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)  # type: ignore[no-untyped-call]
        client.close()

        # a worker for ns2 with ns1's credentials claims nothing and says why
        write_tasks(tmp_path, "ns2", TASKS)
        with processes() as spawn:
            args = ["worker", "tasks:app", "--log-format", "json", "--poll-interval", "50ms"]
            env = taskq_env(acl_url(acl_redis))
            worker = spawn(args, tmp_path, env, tmp_path / "worker.log")
            wait_for(lambda: "no permissions" in worker.text(), 20, "the worker to be refused")
            worker.signal(signal.SIGTERM)
            worker.wait(15)
            assert PASSWORD not in worker.text()
        assert waiting.status() == "due"
        assert not (tmp_path / "ran.txt").exists()
    finally:
        confined.close()
        admin.close()


def _note(tag: str) -> None: ...


def test_passwords_never_reach_errors_logs_or_info(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    port = private_redis.port
    private_redis.stop()  # unreachable: every command fails, naming the URL (masked)
    write_tasks(tmp_path, "ns", TASKS)
    urls = [
        f"redis://user:{PASSWORD}@127.0.0.1:{port}/0",
        f"redis://:{PASSWORD}@127.0.0.1:{port}/0",
        f"redis://127.0.0.1:{port}/0?password={PASSWORD}",
    ]
    runs = [(url, ["info", "tasks:app"]) for url in urls]
    runs.append((urls[0], ["info", "tasks:app", "--json"]))
    runs.append((urls[1], ["enqueue", "tasks:app", "note", '"x"']))
    runs.append((urls[2], ["worker", "tasks:app", "--log-level", "debug"]))
    with processes() as spawn:  # all at once: each waits out the client's bounded retries
        procs = [
            spawn(args, tmp_path, taskq_env(url), tmp_path / f"{n}.log")
            for n, (url, args) in enumerate(runs)
        ]
        *commands, worker = procs
        for proc in commands:
            assert proc.wait(30) == 1, proc.text()  # a runtime error, not a usage error
        wait_for(lambda: "broker unreachable" in worker.text(), 30, "the worker to warn")
        worker.signal(signal.SIGTERM)
        time.sleep(0.5)  # two signals sent back to back may arrive as one
        worker.signal(signal.SIGTERM)  # the second: exit at once
        worker.wait(20)
        for proc in procs:
            assert PASSWORD not in proc.text(), proc.text()
            assert "***" in proc.text(), proc.text()
    for url in urls:
        assert PASSWORD not in mask_url(url) and PASSWORD not in repr(App(url, env={}))


FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


def test_the_package_never_unpickles_or_evaluates() -> None:
    """No module of taskq imports a pickle-like codec or calls eval/exec/compile/__import__."""
    found = []
    for path in sorted(Path(taskq.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                names = [node.func.id] if node.func.id in FORBIDDEN_CALLS else []
            bad = [n for n in names if n in FORBIDDEN_MODULES | FORBIDDEN_CALLS]
            found += [f"{path.name}:{node.lineno}: {n}" for n in bad]  # type: ignore[attr-defined]
    assert not found, found
