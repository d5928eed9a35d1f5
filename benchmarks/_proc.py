"""Process accounting from /proc: RSS and CPU seconds of a pid (all threads)."""

from __future__ import annotations

import os
import resource
import socket

_TICK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set size in KiB (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    # After the comm field: state is fields[0], so utime (field 14) is fields[11], stime fields[12].
    return (int(fields[11]) + int(fields[12])) / _TICK


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CPUMeter:
    """CPU seconds used by a set of processes between ``start()`` and ``stop()``."""

    def __init__(self, **pids: int) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self._wall = 0.0

    def _now(self) -> dict[str, float]:
        now = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        now["client"] = self_cpu_seconds()
        return now

    def start(self) -> CPUMeter:
        import time

        self._start = self._now()
        self._wall = time.monotonic()
        return self

    def stop(self) -> dict[str, float]:
        import time

        end = self._now()
        self.wall = time.monotonic() - self._wall
        self.used = {name: end[name] - self._start[name] for name in end}
        return self.used

    def utilisation(self) -> dict[str, float]:
        """Percent of one core per process over the measured interval."""
        wall = getattr(self, "wall", 0.0) or 1e-9
        return {name: 100.0 * used / wall for name, used in self.used.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit(wanted: int = 16384) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _system_busy_seconds() -> float:
    """CPU seconds all processes on the machine spent busy (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def _ours_seconds(extra_pids: tuple[int, ...]) -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = self_cpu_seconds() + children.ru_utime + children.ru_stime
    for pid in extra_pids:
        try:
            total += cpu_seconds(pid)
        except OSError:
            pass
    return total


class ForeignLoad:
    """CPU used by processes that are not ours (other users of the machine) over an interval.

    Ours = this process + waited-for children (finished servers) + ``live_pids`` (still running).
    """

    def __init__(self, *live_pids: int) -> None:
        import time

        self.live_pids = live_pids
        self._t = time.monotonic()
        self._busy = _system_busy_seconds()
        self._ours = _ours_seconds(live_pids)

    def percent_of_core(self) -> float:
        import time

        wall = time.monotonic() - self._t
        foreign = (_system_busy_seconds() - self._busy) - (_ours_seconds(self.live_pids) - self._ours)
        return max(0.0, 100.0 * foreign / wall) if wall > 0 else 0.0
