"""Settings: env names of the Go scheduler, ``.env`` files, durations, URL masking, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskq import App, ConfigError
from taskq.config import (
    DEFAULT_URL,
    Settings,
    environment,
    mask_url,
    parse_duration,
    read_dotenv,
    resolve_url,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("200ms", 0.2),
        ("3s", 3.0),
        ("3", 3.0),
        ("1.5m", 90.0),
        ("2h", 7200.0),
        (" 0 ", 0.0),
        # Go's time.ParseDuration forms, as the Go scheduler's INTERVAL took them
        ("1m30s", 90.0),
        ("2h45m", 9900.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("1s500ms", 1.5),
        ("250000ns", 0.00025),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "X") == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "abc", "-1s", "3 days", "1e3", "nan", "1m30", "1 m", "s", "1d", "1m-30s"]
)
def test_bad_durations_name_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="INTERVAL="):
        parse_duration(text, "INTERVAL")


@pytest.mark.parametrize("text", ["0", "0s", "0ms"])
def test_a_zero_duration_where_one_must_pass_is_refused_naming_the_variable(text: str) -> None:
    assert parse_duration(text, "JOB_DELAY") == 0.0
    with pytest.raises(ConfigError, match=r"INTERVAL='0.*' must be more than 0"):
        parse_duration(text, "INTERVAL", positive=True)
    with pytest.raises(ConfigError, match="INTERVAL="):
        Settings.from_env({"INTERVAL": text})


def test_url_precedence() -> None:
    assert resolve_url({}) == DEFAULT_URL
    assert resolve_url({"REDIS_ADDR": "localhost:6379"}) == "redis://localhost:6379/0"
    assert resolve_url({"REDIS_ADDR": "h:1", "REDIS_DB": "3"}) == "redis://h:1/3"
    env = {"REDIS_URL": "redis://r/1", "REDIS_ADDR": "h:1"}
    assert resolve_url(env) == "redis://r/1"
    assert resolve_url({**env, "TASKQ_URL": "sqlite:///x.db"}) == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("env", "culprit"),
    [
        ({"REDIS_ADDR": "h:1", "REDIS_DB": "x"}, "REDIS_DB"),
        ({"REDIS_ADDR": "h:1", "REDIS_DB": "-1"}, "REDIS_DB"),
        ({"REDIS_ADDR": "not a host"}, "REDIS_ADDR"),
        ({"INTERVAL": "soon"}, "INTERVAL"),
        ({"JOB_DELAY": "x"}, "JOB_DELAY"),
        ({"JOB_MAX_RETRY": "three"}, "JOB_MAX_RETRY"),
        ({"JOB_MAX_RETRY": "-1"}, "JOB_MAX_RETRY"),
    ],
)
def test_bad_env_values_name_the_variable(env: dict[str, str], culprit: str) -> None:
    with pytest.raises(ConfigError, match=culprit):
        Settings.from_env(env)


def test_go_scheduler_names_are_read() -> None:
    settings = Settings.from_env(
        {
            "REDIS_ADDR": "localhost:6379",
            "INTERVAL": "200ms",
            "JOB_DELAY": "3s",
            "JOB_MAX_RETRY": "5",
        }
    )
    assert settings == Settings("redis://localhost:6379/0", 0.2, 3.0, 5)


def test_dotenv_is_read_and_real_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# comment\nREDIS_ADDR=localhost:6379\nexport INTERVAL='200ms'\nJOB_DELAY=3s # inline\n"
    )
    env = environment({"INTERVAL": "1s"}, tmp_path)
    assert env["REDIS_ADDR"] == "localhost:6379"
    assert env["INTERVAL"] == "1s"
    assert env["JOB_DELAY"] == "3s"
    app = App(env={"JOB_MAX_RETRY": "7"}, cwd=tmp_path)
    assert app.settings.url == "redis://localhost:6379/0"
    assert app.settings.max_retries == 7


def test_a_bad_dotenv_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GOOD=1\nthis is not an assignment\n")
    with pytest.raises(ConfigError, match=r"\.env:2"):
        read_dotenv(tmp_path / ".env")


def test_passwords_are_masked() -> None:
    assert mask_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert mask_url("rediss://:s3cret@host/1") == "rediss://:***@host/1"
    assert mask_url("redis://host:6379/0") == "redis://host:6379/0"
    assert "s3cret" not in repr(App("redis://u:s3cret@h:1/0", env={}))


def test_a_bad_url_scheme_is_a_config_error_on_first_use() -> None:
    app = App("postgres://x", env={})
    with pytest.raises(ConfigError, match="unsupported broker URL scheme 'postgres'"):
        _ = app.broker


@pytest.mark.parametrize("namespace", ["", "a:b", "{x}", "a b"])
def test_bad_namespaces_are_refused(namespace: str) -> None:
    with pytest.raises(ConfigError):
        App("memory://", namespace=namespace, env={})
