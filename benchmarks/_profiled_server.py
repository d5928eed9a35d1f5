"""``python -m benchmarks._profiled_server OUT.prof <jupyter_server args...>``

Runs the Jupyter server under a cProfile profiler whose statistics are cleared at SIGUSR1 and
written to ``OUT.prof`` at SIGUSR2, so the profile covers only the benchmarked window (not
start-up, config/schema parsing or shutdown).  The profiler is enabled before the server starts:
on CPython 3.11, enabling it from a signal handler would not reach the frames already running
(the event loop's), and nothing would be recorded.
"""

from __future__ import annotations

import cProfile
import signal
import sys


def main() -> None:
    out = sys.argv[1]
    profiler = cProfile.Profile()

    def start(_signum: int, _frame: object) -> None:
        profiler.clear()

    def stop(_signum: int, _frame: object) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = ["jupyter-server", *sys.argv[2:]]
    from jupyter_server.serverapp import main as server_main

    profiler.enable()
    server_main()


if __name__ == "__main__":
    main()
