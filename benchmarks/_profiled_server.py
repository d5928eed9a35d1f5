"""``python -m benchmarks._profiled_server OUT.prof <jupyter_server args...>``

Runs the Jupyter server under a cProfile profiler whose statistics are cleared at ``START`` and
written to ``OUT.prof`` at ``STOP`` (real-time signals: Jupyter server takes SIGUSR1 for itself),
so the profile covers only the benchmarked window (not start-up, config/schema parsing or
shutdown).  The profiler itself runs from before the server starts; the signals only reset and
dump its statistics.
"""

from __future__ import annotations

import cProfile
import signal
import sys

START = signal.SIGRTMIN + 1
STOP = signal.SIGRTMIN + 2


def main() -> None:
    out = sys.argv[1]
    profiler = cProfile.Profile()

    def start(_signum: int, _frame: object) -> None:
        profiler.clear()

    def stop(_signum: int, _frame: object) -> None:
        profiler.disable()
        profiler.dump_stats(out)

    signal.signal(START, start)
    signal.signal(STOP, stop)
    sys.argv = ["jupyter-server", *sys.argv[2:]]
    from jupyter_server.serverapp import main as server_main

    profiler.enable()
    server_main()


if __name__ == "__main__":
    main()
