"""Count file writes with Linux inotify (via ctypes), so no write between two polls is ever missed.

``DirWatch(dir)`` records ``(time.monotonic(), mask, name)`` for every event in ``dir`` from a
background thread.  A notebook write is an ``IN_CLOSE_WRITE`` (written in place) or an
``IN_MOVED_TO`` (temp file + rename) on the notebook's name; an SQLite commit shows as one burst
of ``IN_MODIFY`` events on the database or its ``-wal``/``-journal`` file.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import threading
import time
from pathlib import Path

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
_EVENT = struct.Struct("iIII")

_libc = None


def _lib() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def available() -> bool:
    try:
        return hasattr(_lib(), "inotify_init1")
    except OSError:
        return False


class DirWatch:
    def __init__(self, directory: str | Path, mask: int = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE):
        self.directory = Path(directory)
        self.events: list[tuple[float, int, str]] = []
        self._lock = threading.Lock()
        lib = _lib()
        self._fd = lib.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        if lib.inotify_add_watch(self._fd, os.fsencode(self.directory), mask) < 0:
            os.close(self._fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch({self.directory}) failed")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"inotify {self.directory}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(20):
                continue
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            now = time.monotonic()
            pos = 0
            batch = []
            while pos < len(data):
                _, mask, _, length = _EVENT.unpack_from(data, pos)
                name = data[pos + _EVENT.size : pos + _EVENT.size + length].rstrip(b"\0").decode()
                batch.append((now, mask, name))
                pos += _EVENT.size + length
            with self._lock:
                self.events.extend(batch)

    def snapshot(self) -> list[tuple[float, int, str]]:
        with self._lock:
            return list(self.events)

    def clear(self) -> None:
        with self._lock:
            self.events.clear()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self._fd)

    def __enter__(self) -> DirWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_writes(events: list[tuple[float, int, str]], name: str) -> list[float]:
    """Times at which ``name`` got new content (closed after writing, or renamed into place)."""
    return [t for t, mask, n in events if n == name and mask & (IN_CLOSE_WRITE | IN_MOVED_TO)]


def write_bursts(events: list[tuple[float, int, str]], names: set[str], gap: float = 0.005) -> int:
    """Modify events on ``names`` grouped into bursts separated by more than ``gap`` seconds."""
    times = sorted(t for t, mask, n in events if n in names and mask & IN_MODIFY)
    bursts = 0
    last = -1e9
    for t in times:
        if t - last > gap:
            bursts += 1
        last = t
    return bursts
