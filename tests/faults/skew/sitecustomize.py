"""Loaded by worker processes of the clock-skew tests (via PYTHONPATH): time.time() is off by
TASKQ_TEST_CLOCK_OFFSET seconds, as on a machine whose wall clock is wrong."""

import os
import time

_offset = float(os.environ.get("TASKQ_TEST_CLOCK_OFFSET", "0") or 0)
if _offset:
    _real_time, _real_time_ns = time.time, time.time_ns
    time.real_time = _real_time  # type: ignore[attr-defined]  # the true clock, for the test
    time.time = lambda: _real_time() + _offset
    time.time_ns = lambda: _real_time_ns() + int(_offset * 1_000_000_000)
