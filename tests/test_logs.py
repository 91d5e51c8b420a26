"""Job event lines: written straight to the worker's own handler, or as records to a user's."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from taskq.worker import logs

FIELDS = {"job_id": "j1", "task": "add", "queue": "default", "attempt": 1}


class Writes(io.StringIO):
    """A stream that counts its write calls."""

    calls = 0

    def write(self, text: str) -> int:
        self.calls += 1
        return super().write(text)


@pytest.fixture
def stream() -> Iterator[Writes]:
    """taskq's logs configured to a fresh stream; the ``taskq`` logger restored afterwards."""
    root = logging.getLogger("taskq")
    saved = (list(root.handlers), root.level, root.propagate, list(root.filters))
    out = Writes()
    yield out
    root.handlers[:], root.filters[:] = saved[0], saved[3]
    root.setLevel(saved[1])
    root.propagate = saved[2]


def _executed(job_id: str = "j1") -> None:
    fields = dict(FIELDS, job_id=job_id)
    logs.event(logging.INFO, "executed", "executed %s %s in %.1fms", "add", job_id, 0.25, **fields)


def test_a_direct_json_line_is_the_line_the_formatter_makes_of_a_record(stream: Writes) -> None:
    logs.configure("json", logging.INFO, stream)
    _executed()
    direct = json.loads(stream.getvalue())
    record = logs.log.makeRecord(
        "taskq.worker",
        logging.INFO,
        "taskq.worker",
        0,
        "executed %s %s in %.1fms",
        ("add", "j1", 0.25),
        None,
        extra=dict(FIELDS, event="executed"),
    )
    standard = json.loads(logs.JsonFormatter().format(record))
    assert abs(direct.pop("ts") - standard.pop("ts")) < 5
    assert direct == standard
    assert direct["message"] == "executed add j1 in 0.2ms" and direct["level"] == "info"


def test_a_direct_text_line_carries_the_events_mark(stream: Writes) -> None:
    logs.configure("text", logging.INFO, stream)
    _executed()
    logs.event(logging.ERROR, "exhausted", "exhausted add j2", **FIELDS)
    lines = stream.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == [
        "✅ executed add j1 in 0.2ms",
        "❌ exhausted add j2",
    ]


def test_the_lines_of_a_batch_are_written_at_its_end_in_one_call_and_in_order(
    stream: Writes,
) -> None:
    logs.configure("json", logging.INFO, stream)
    with logs.batch():
        _executed("a")
        logs.event(logging.WARNING, "failed", "failed add b", **dict(FIELDS, job_id="b"))
        _executed("c")
        assert stream.calls == 0 and stream.getvalue() == ""
    assert stream.calls == 1
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["job_id"], e["event"], e["level"]) for e in events] == [
        ("a", "executed", "info"),
        ("b", "failed", "warning"),
        ("c", "executed", "info"),
    ]


def test_a_batch_inside_a_batch_is_part_of_it(stream: Writes) -> None:
    logs.configure("json", logging.INFO, stream)
    with logs.batch():
        _executed("a")
        with logs.batch():
            _executed("b")
        _executed("c")
        assert stream.calls == 0
    assert [json.loads(line)["job_id"] for line in stream.getvalue().splitlines()] == [
        "a",
        "b",
        "c",
    ]
    assert stream.calls == 1


def test_levels_below_the_configured_one_write_nothing(stream: Writes) -> None:
    logs.configure("json", logging.WARNING, stream)
    with logs.batch():
        _executed()
    logs.event(logging.DEBUG, "started", "started add j1", **FIELDS)
    assert stream.getvalue() == "" and stream.calls == 0


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_users_own_handler_gets_each_event_as_a_record_with_its_fields(stream: Writes) -> None:
    logs.configure("json", logging.INFO, stream)
    mine = Collect()
    logging.getLogger("taskq").addHandler(mine)
    with logs.batch():
        _executed()
        assert len(mine.records) == 1 and stream.calls == 1  # nothing held back
    [record] = mine.records
    assert record.getMessage() == "executed add j1 in 0.2ms"
    assert (record.event, record.job_id, record.attempt) == ("executed", "j1", 1)  # type: ignore[attr-defined]
    assert json.loads(stream.getvalue())["event"] == "executed"


@pytest.mark.parametrize("where", ["taskq.worker", "handler"])
def test_a_filter_on_the_way_is_applied(stream: Writes, where: str) -> None:
    logs.configure("json", logging.INFO, stream)
    handler = logging.getLogger("taskq").handlers[0]
    target = logs.log if where == "taskq.worker" else handler
    drop_executed = logging.Filter()
    drop_executed.filter = lambda record: getattr(record, "event", "") != "executed"  # type: ignore[method-assign]
    target.addFilter(drop_executed)
    try:
        _executed()
        logs.event(logging.WARNING, "failed", "failed add j1", **FIELDS)
    finally:
        target.removeFilter(drop_executed)
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["failed"]


@pytest.mark.parametrize(
    "value",
    [
        'quotes " and \\ backslash',
        "line\nbreak\tand \x00 control",
        "unicode ✅ é 日本",
        0,
        -7,
        2**70,
        0.1,
        1e-9,
        float("nan"),
        float("inf"),
        True,
        None,
        [1, "a"],
    ],
)
def test_a_json_line_is_what_json_dumps_writes(value: object) -> None:
    fields = {"job_id": "j1", "error": value, "duration_ms": value, "attempt": value}
    line = logs.JsonFormatter().event_line(1.5, logging.ERROR, "ev\n", f"m {value!r}", fields)
    expected = {"ts": 1.5, "level": "error", "event": "ev\n", "message": f"m {value!r}"}
    expected |= {"job_id": "j1", "attempt": value, "duration_ms": value, "error": value}
    assert line == json.dumps(expected, ensure_ascii=False)


def test_an_event_that_cannot_be_formatted_is_reported_not_raised(
    stream: Writes, capsys: pytest.CaptureFixture[str]
) -> None:
    """As the logging module does with a record: the worker that logged it carries on."""
    logs.configure("json", logging.INFO, stream)
    logs.event(logging.INFO, "executed", "executed %d", "not a number", **FIELDS)
    logs.event(logging.INFO, "failed", "failed", **dict(FIELDS, error=object()))
    _executed()
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["executed"]
    assert capsys.readouterr().err.count("--- Logging error ---") == 2
