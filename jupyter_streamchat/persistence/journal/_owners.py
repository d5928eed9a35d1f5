"""Who owns journaled runs: one lock file per server, held (``flock``) for as long as its journal is open.

The kernel drops a ``flock`` when its process dies, however it dies, so a lock file that can be locked
by someone else belongs to a server that is gone. File systems without locks fall back to the process
identity (pid, boot id, start time) written into the lock file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from ._store import PRIVATE_FILE, make_private_dirs

log = logging.getLogger("jupyter_streamchat.journal")

_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)  # flock is not supported by the file system


class Owners:
    def __init__(self, directory: Path, owner: str) -> None:
        self.directory = directory
        self.owner = owner
        self._lock_fd: int | None = None

    def lock_path(self, owner: str) -> Path:
        return self.directory / f"{owner}.lock"

    def take(self) -> None:
        make_private_dirs(self.directory)
        # Locked under a temporary name, then renamed into place (the lock follows the inode): a lock
        # file that others can see is always held, so nobody can take a starting server for a gone one.
        tmp = self.directory / f".{self.owner}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in _NO_LOCKS:
                    raise
                log.warning(
                    "streamchat journal: %s has no file locks; other servers will judge this one by its pid",
                    self.directory,
                )
            os.write(fd, json.dumps(_this_process()).encode())
            os.replace(tmp, self.lock_path(self.owner))
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            self.lock_path(self.owner).unlink()
        os.close(self._lock_fd)
        self._lock_fd = None

    @property
    def held(self) -> bool:
        return self._lock_fd is not None

    def drop_without_cleanup(self) -> None:
        """What SIGKILL does to an owner (tests): its lock is gone, its lock file stays."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def forget(self, owner: str) -> None:
        with contextlib.suppress(OSError):
            self.lock_path(owner).unlink()

    def sweep(self) -> None:
        """Remove the lock files of servers that died with no run left to recover (they would pile up)."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            # Temporary ``.*.tmp`` files are left alone: one may belong to a server starting right now.
            if name.endswith(".lock") and name != f"{self.owner}.lock" and self.gone(name[: -len(".lock")]):
                with contextlib.suppress(OSError):
                    (self.directory / name).unlink()

    def gone(self, owner: str | None) -> bool:
        """True only if the server that journaled these runs provably is not running any more."""
        if owner is None:
            return True  # journaled before runs had owners: the old rule, recover them
        path = self.lock_path(owner)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return True  # an owner removes its lock file only after closing its journal
        except OSError:
            log.warning("streamchat journal: cannot check owner %s (%s); its runs are left alone", owner, path)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # held: the owner is alive
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                raise
            # A file system without working locks: fall back to the process identity it wrote.
            return _process_gone(_read_json(fd))
        finally:
            os.close(fd)  # also releases the probe's lock, if it got one
        return True


def _this_process() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "start": _process_start(os.getpid())}


def _process_start(pid: int) -> str | None:
    """Boot id + start time of a process (together unique on a host), or None without /proc."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    # Field 22 (starttime); the command name in field 2 may hold spaces, so count from its ')'.
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"


def _process_gone(info: dict[str, Any]) -> bool:
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False  # another machine's process cannot be checked from here
    recorded, current = info.get("start"), _process_start(pid)
    if recorded is not None and current is not None:
        return bool(current != recorded)  # a different start time: the pid was reused
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, but belongs to someone else
        return False
    return False


def _read_json(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
