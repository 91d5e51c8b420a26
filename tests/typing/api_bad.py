# Wrong uses of the public API: mypy --strict must report an error on every line marked "E".
# This file is not imported or run; tests/test_typing.py checks it with mypy.
from __future__ import annotations

from taskq import App, JobHandle

app = App("memory://")


@app.task
def greet(name: str) -> str:
    return f"Hello {name}"


greet.delay_by(3, 42)  # E: wrong argument type
greet.delay_by(3)  # E: missing argument
greet.delay_by(3, "Ada", "extra")  # E: too many arguments
greet.delay_by(3, nme="Ada")  # E: unknown keyword
greet.delay_by("soon", "Ada")  # E: delay must be seconds or a timedelta
greet.delay(name=1)  # E: wrong keyword type
greet.with_options(job_id="x").delay_by(3, 42)  # E: options keep the signature
greet.with_options(timeout=3)  # E: not a call option
wrong: JobHandle[int] = greet.delay("Ada")  # E: handle carries the return type
