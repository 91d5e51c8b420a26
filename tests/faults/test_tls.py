"""``rediss://`` against a real TLS redis-server with a self-signed CA: certificates are verified
by default, and turning verification off is explicit and logged."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskq import App, BrokerError
from taskq.brokers.redis import connect
from tests.conftest import RedisServer, free_port, tool_or_skip
from tests.faults.helpers import run_taskq, taskq_env, write_tasks

pytestmark = [pytest.mark.faults, pytest.mark.redis, pytest.mark.timeout(60)]

TASKS = """
@app.task
def note(tag: str) -> None:
    record("ran.txt", tag)
"""


CERTIFICATES = [
    "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=taskq-test-CA",
    "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost",
    "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2"
    " -extfile san.cnf",
]


def make_certificates(directory: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it, with the openssl CLI (skipped
    without it on a laptop; under CI=true a missing openssl fails, as a missing Redis does)."""
    openssl = tool_or_skip("openssl")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for command in CERTIFICATES:
        args = [openssl, *command.split()]
        subprocess.run(args, cwd=directory, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, int, Path]]:
    certs = tmp_path_factory.mktemp("certs")
    make_certificates(certs)
    tls_port = free_port()
    tls = f"--tls-port {tls_port} --tls-auth-clients no --tls-cert-file {certs}/server.crt"
    tls += f" --tls-key-file {certs}/server.key --tls-ca-cert-file {certs}/ca.crt"
    with RedisServer(extra=tls.split()) as server:  # its plain port answers the readiness check
        yield server, tls_port, certs / "ca.crt"


def _roundtrip(url: str, namespace: str) -> str:
    app = App(url, namespace=namespace, env={})

    @app.task
    def note(tag: str) -> None: ...

    try:
        handle = note.delay("tls")
        return handle.status()
    finally:
        app.close()


def test_an_untrusted_certificate_is_refused_by_default(
    tls_redis: tuple[RedisServer, int, Path], namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, port, _ = tls_redis
    with caplog.at_level(logging.WARNING, "taskq"), pytest.raises(BrokerError) as refused:
        _roundtrip(f"rediss://127.0.0.1:{port}/0", namespace)
    print(refused.value)
    assert "certificate verify failed" in str(refused.value).lower()
    assert "verification is OFF" not in caplog.text  # it is on: nothing to warn about


def test_a_certificate_signed_by_the_given_ca_is_accepted(
    tls_redis: tuple[RedisServer, int, Path], namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, port, ca = tls_redis
    with caplog.at_level(logging.WARNING, "taskq"):
        assert _roundtrip(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}", namespace) == "due"
    assert "verification is OFF" not in caplog.text


def test_turning_verification_off_is_explicit_and_logged(
    tls_redis: tuple[RedisServer, int, Path], namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    _, port, _ = tls_redis
    with caplog.at_level(logging.WARNING, "taskq"):
        connect(f"rediss://taskq:s3cret@127.0.0.1:{port}/0?ssl_cert_reqs=none").close()
        assert _roundtrip(f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=none", namespace) == "due"
    assert "TLS certificate verification is OFF" in caplog.text
    assert "s3cret" not in caplog.text


def test_a_worker_runs_jobs_over_tls(
    tls_redis: tuple[RedisServer, int, Path], namespace: str, tmp_path: Path
) -> None:
    _, port, ca = tls_redis
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    write_tasks(tmp_path, namespace, TASKS)
    env = taskq_env(url)
    assert run_taskq(["enqueue", "tasks:app", "note", '"over-tls"'], tmp_path, env).returncode == 0
    done = run_taskq(["worker", "tasks:app", "--burst"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ran.txt").read_text() == "over-tls\n"
    assert "rediss://127.0.0.1" in done.stderr.splitlines()[0]
