"""One server per data folder: an exclusive lock held for the server's whole life.

Two servers on one folder would both "recover" the other's running job and run it
twice. The lock is an advisory `flock` on DATA_DIR/server.lock, taken before the
store is opened or any job is looked at; the kernel drops it when the process dies,
so a crashed server never leaves a stale lock behind. The file also records who
holds it, for the message the second server prints.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path


class DataDirBusy(Exception):
    pass


class DataDirLock:
    NAME = "server.lock"

    def __init__(self, root: Path):
        self.path = Path(root) / self.NAME
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = f" (pid {holder.get('pid')}, {holder.get('endpoint') or 'starting'})" if holder else ""
            raise DataDirBusy(
                f"Another tokenflow server{who} is using the data folder {self.path.parent}: "
                "stop it first, or start this one with its own --data-dir."
            ) from None
        self._fd = fd
        self.note(endpoint="")
        return self

    def note(self, endpoint: str) -> None:
        """Record the holder (pid, endpoint) for a second server's message."""
        if self._fd is None:
            return
        data = json.dumps({"pid": os.getpid(), "endpoint": endpoint, "since": time.time()}).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _read_holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
