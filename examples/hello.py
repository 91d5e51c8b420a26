"""taskq's first run: the Go scheduler's walkthrough, on the embedded broker by default.

    python examples/hello.py            # enqueue the jobs, run a worker until they are all done

It enqueues a job that succeeds after its delay, one that fails until its retries are exhausted,
and three jobs with different delays that finish in due order; then it runs a worker in burst
mode (it exits once nothing is waiting or running) and prints what became of each job.
Set TASKQ_URL=redis://localhost:6379/0 to run the same on Redis. To run the worker on its own:
``cd examples && taskq worker hello:app``.
"""

from __future__ import annotations

from taskq import App, TaskFailed
from taskq.worker import Worker, WorkerOptions
from taskq.worker.logs import configure
from taskq.worker.signals import run_in_foreground

app = App(namespace="hello")


@app.task(max_retries=3, backoff=lambda attempt: 2.0)  # like the Go scheduler: retry every 2 s
def process(payload: str) -> str:
    """Process a payload; the payload "fail" always fails, to show retries."""
    if payload == "fail":
        raise RuntimeError("the payload says fail")
    return f"processed {payload!r}"


def main() -> None:
    configure()
    jobs = [process.delay_by(3, "Process payment"), process.delay_by(2, "fail")]
    jobs += [
        process.delay_by(delay, name) for name, delay in [("Job 1", 2), ("Job 2", 5), ("Job 3", 1)]
    ]
    run_in_foreground(Worker(app, WorkerOptions(burst=True, poll_interval=0.5)))
    print("\nWhat became of each job:")
    for handle in jobs:
        try:
            print(f"  {handle.id}  {handle.result(timeout=1)}")
        except TaskFailed as exc:
            print(f"  {handle.id}  dead after its retries: {exc.error_type}: {exc.message}")


if __name__ == "__main__":
    main()
