"""Correct uses of the public API: ``mypy --strict`` must accept every line (CI runs it)."""

from __future__ import annotations

import datetime as dt

from taskq import App, AsyncTask, CurrentJob, JobHandle, JobInfo, Task, current_job

app = App("memory://")


@app.task(max_retries=3)
def greet(name: str, punctuation: str = "!") -> str:
    return f"Hello {name}{punctuation}"


@app.task
async def fetch(url: str) -> int:
    return len(url)


def uses() -> None:
    handle: JobHandle[str] = greet.delay_by(3, "Ada")
    greet.delay_by(dt.timedelta(seconds=3), "Ada", punctuation="?")
    greet.delay("Ada")
    greet.delay_at(dt.datetime.now(dt.timezone.utc), "Ada")
    greet.with_options(job_id="greet-ada", queue="mail").delay_by(3, "Ada")
    fetch.delay("https://example.org")
    local: str = greet("Ada")
    value: str = handle.result(timeout=10)
    assert isinstance(greet, Task) and isinstance(fetch, AsyncTask)
    print(local, value, handle.id, handle.status())
    info: JobInfo = handle.info()
    cancelled: bool = handle.cancel()
    print(info.attempts, info.last_error, info.due_at, cancelled)


@app.task(result_ttl=0, store_none=True)
def careful(steps: int) -> None:
    job: CurrentJob = current_job()
    for _ in range(steps):
        if job.cancelled:
            return
    print(job.id, job.task, job.queue, job.attempt)


async def async_uses() -> None:
    handle: JobHandle[int] = await fetch.adelay_by(1, "https://example.org")
    count: int = await handle.aresult(timeout=5)
    coroutine_result: int = await fetch("https://example.org")
    print(count, coroutine_result)
