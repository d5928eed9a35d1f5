"""How runs meet the server's lifecycle: SIGINT without a terminal, and activity for idle culling.

**SIGINT.** jupyter_server handles SIGINT only when stdin is a terminal (it asks "Shut down this Jupyter
server?"). Otherwise SIGINT keeps Python's default handler: ``KeyboardInterrupt`` is raised inside the event
loop, ``ServerApp.start_ioloop`` catches it, logs "Interrupted..." and returns, and the process exits without
``ServerApp._cleanup``: no extension's ``stop_extension`` runs, so running runs were neither interrupted nor
recorded in their notebooks. That is exactly how JupyterHub stops a server: its local spawners send SIGINT
first, and a spawned server's stdin is not a terminal (nor under systemd, in a container, or with
``jupyter server < /dev/null &``). JupyterHub's own mapping of SIGINT to a clean stop (it overrides
``_handle_sigint`` with ``_signal_stop``) cannot help: ``_handle_sigint`` is only installed for a terminal, and
``jupyterhub-singleuser`` on Jupyter Server 2 runs as an extension of the stock ``ServerApp``, without that
override at all. So when SIGINT is still Python's default once the server runs, it is mapped to the same clean
stop as SIGTERM.

**Activity.** JupyterHub culls servers by their last activity, which ``jupyterhub-singleuser`` reports from
``web_app.last_activity()``; jupyter_server's own ``shutdown_no_activity_timeout`` reads the same. A detached
run streaming for a user who closed the tab makes no request, so without help the server looks idle and is
culled mid-run. A running run therefore counts as activity, through the documented hook (a web_app setting
whose name ends in ``_last_activity``), but each run only for ``cap`` seconds after it started, so that a run
can never keep a server alive forever.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any

ACTIVITY_SETTING = "streamchat_last_activity"
# How long a run counts as activity when runs have no time limit (run_time_limit = 0): the default limit.
UNLIMITED_RUN_ACTIVITY = 1800.0


def started_at(created: str) -> datetime:
    """A run's ``created`` timestamp (ISO-8601, ``Z``) as an aware datetime."""
    return datetime.fromisoformat(created.replace("Z", "+00:00"))


def runs_activity(created: Iterable[str], now: datetime, cap: float) -> datetime | None:
    """The latest moment the running runs created at ``created`` count as activity, or None without runs.

    A run counts until ``now`` while it is younger than ``cap`` seconds, then only until ``created + cap``.
    """
    latest: datetime | None = None
    limit = timedelta(seconds=cap)
    for stamp in created:
        moment = min(now, started_at(stamp) + limit)
        if latest is None or moment > latest:
            latest = moment
    return latest


def mark_activity(settings: dict[str, Any], moment: datetime) -> None:
    """Move the server's ``streamchat_last_activity`` forward to ``moment`` (never backwards)."""
    previous = settings.get(ACTIVITY_SETTING)
    if previous is None or moment > previous:
        settings[ACTIVITY_SETTING] = moment


def utcnow() -> datetime:
    return datetime.now(UTC)


class SigintStop:
    """Maps SIGINT to a clean stop of the server when nothing else handles it (see the module docstring)."""

    def __init__(self, stop: Callable[[], None], log: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
        self._stop = stop
        self._log = log
        self._received = False
        self.installed = False

    def install(self) -> bool:
        """Take SIGINT if it still raises KeyboardInterrupt; True if it did. Main thread only (signal's rule)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return False  # a terminal is attached (the server asks), or someone else chose a behaviour
        signal.signal(signal.SIGINT, self._handle)
        self.installed = True
        return True

    def uninstall(self) -> None:
        """Give SIGINT back to Python if it is still ours (an embedding process lives on after the server)."""
        if self.installed and threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) == self._handle:
                signal.signal(signal.SIGINT, signal.default_int_handler)
            self.installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._received:
            # The first one is already stopping the server; exiting now would lose what it is recording.
            self._log.warning("streamchat: SIGINT again while stopping; waiting for the clean stop to finish")
            return
        self._received = True
        self._log.critical("received signal %s without a terminal, stopping (streamchat records running runs)", signum)
        self._stop()
