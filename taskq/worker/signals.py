"""Run a worker in the foreground: a first SIGINT/SIGTERM stops it gracefully, a second at once."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from .logs import log
from .runner import Worker

EXIT_NOW = 1  # exit code after a second signal, or a stop the broker did not let end in time


def run_in_foreground(worker: Worker) -> int:
    """Run until stopped by a signal (or idle, in burst mode); returns the exit code (0; 1 if
    the worker stopped on an error), or exits the process with :data:`EXIT_NOW` when the stop
    ran past its bound."""
    # a sync job handed back at shutdown may still run in its (daemon) thread, which Python
    # cannot stop: its job is already back in the queue, and the thread ends with the process
    asyncio.run(_main(worker))
    if worker.overran:  # threads still blocked on the broker would hold the exit: end now
        logging.shutdown()
        os._exit(EXIT_NOW)
    return 1 if worker.claimer.failed else 0


async def _main(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    seen = 0

    def on_signal(signum: int) -> None:
        nonlocal seen
        seen += 1
        name = signal.Signals(signum).name
        if seen == 1:
            log.info(
                "%s: finishing running jobs (up to %gs); send it again to exit now",
                name,
                worker.options.grace,
            )
            worker.stop()
            return
        log.warning("%s again: exiting now; running jobs return when their leases end", name)
        logging.shutdown()
        os._exit(EXIT_NOW)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await worker.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
            # from here to the process's end a signal means "exit now", as a second one does
            signal.signal(signum, lambda *_: os._exit(EXIT_NOW if seen else 0))
