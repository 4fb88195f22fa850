"""What the server keeps on disk, how much of it there is, and how it goes away.

The data folder holds the job database and one folder per job (stored frames,
proxies, previews). None of it is the user's: outputs live wherever the job wrote
them and are never deleted here. Deleting a job removes its row, its events and its
folder; retention does the same for old finished jobs; the inversion cache is trimmed
least-recently-used first.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bridge.display import format_bytes
from bridge.wire.protocol import JobState
from server.paths import DataDir
from server.scheduler import Scheduler
from server.store import JobStore

log = logging.getLogger("tokenflow.server")

# Tests point this at a number (bytes) to make the submit-time check see that much
# free space; nothing else sets it.
FREE_SPACE_ENV = "TOKENFLOW_TEST_FREE_BYTES"

FreeSpace = Callable[[Path], int]


def real_free_space(path: Path) -> int:
    """Bytes an unprivileged process may still write on the file system holding `path`."""
    return shutil.disk_usage(_existing(path)).free


def free_space_from_env() -> FreeSpace:
    value = os.environ.get(FREE_SPACE_ENV)
    if value is None:
        return real_free_space
    fixed = int(value)
    return lambda path: fixed


def _existing(path: Path) -> Path:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def tree_bytes(path: Path) -> int:
    """Bytes used by the files under `path` (0 if it does not exist); never follows links."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass  # removed while we counted
    return total


@dataclass(frozen=True)
class Usage:
    jobs_bytes: int  # job folders: stored frames, proxies, previews
    database_bytes: int
    cache_bytes: int  # the inversion cache
    free_bytes: int  # free on the data folder's file system

    def describe(self) -> str:
        return (f"jobs {format_bytes(self.jobs_bytes)}, database {format_bytes(self.database_bytes)}, "
                f"inversion cache {format_bytes(self.cache_bytes)}; {format_bytes(self.free_bytes)} free")


def usage(data: DataDir, cache_dir: Path | None, free_space: FreeSpace = real_free_space) -> Usage:
    """Space used; jobs deleted but still in their grace period count as used (they are, on the disk)."""
    db = sum(p.stat().st_size for p in data.root.glob(data.database.name + "*") if p.is_file())
    return Usage(tree_bytes(data.jobs), db, tree_bytes(cache_dir) if cache_dir else 0, free_space(data.root))


class DeleteRefused(Exception):
    pass


# A deleted job's folder waits this long in DATA_DIR/jobs/.deleted before it goes: a
# client may be in the middle of replaying or fetching its frames (the front reads them
# from disk as it sends), and must not find them gone under it.
DELETE_GRACE_S = 600.0
TRASH = ".deleted"


def trash_folder(data: DataDir) -> Path:
    return data.jobs / TRASH


def remove_job_folder(data: DataDir, job_id: str) -> int:
    """Take the job's folder out of the data directory; returns the bytes it held.

    It is moved aside at once (a rename) and removed for good by `empty_trash` after
    DELETE_GRACE_S; readers still sending its frames find them there meanwhile.
    """
    folder = data.job(job_id)
    if not folder.exists():
        return 0
    freed = tree_bytes(folder)
    trash = trash_folder(data)
    trash.mkdir(parents=True, exist_ok=True)
    target = trash / f"{job_id}"
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    os.replace(folder, target)
    os.utime(target)  # the grace period counts from the delete
    return freed


def empty_trash(data: DataDir, grace_s: float = DELETE_GRACE_S, now: float | None = None) -> None:
    now = time.time() if now is None else now
    trash = trash_folder(data)
    if not trash.is_dir():
        return
    for folder in trash.iterdir():
        try:
            if now - folder.stat().st_mtime >= grace_s:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


def delete_job(store: JobStore, scheduler: Scheduler, data: DataDir, job_id: str) -> int:
    """Forget a job that is not running and remove what the server stored for it.

    A queued job leaves the queue first; its outputs (the user's files) stay. Returns
    the bytes freed; raises DeleteRefused while the job runs.
    """
    job = store.get(job_id)
    if job is None:
        return 0
    if job.state == JobState.QUEUED:
        scheduler.remove_if_queued(job_id)
    # `current` is set under the scheduler's lock when the worker takes a job, so a
    # job that has left the queue is either running here or will never run.
    if scheduler.is_running(job_id) or not store.delete_job(job_id):
        raise DeleteRefused(f"Job {job_id} is running, so it cannot be deleted now.")
    return remove_job_folder(data, job_id)


@dataclass(frozen=True)
class Retention:
    """How long finished jobs' stored data is kept. 0 turns a limit off."""

    keep_days: float = 30.0
    keep_bytes: int = 20 * 10**9
    max_jobs: int = 10_000  # jobs in the store, any state: a submit beyond it is refused
    cache_bytes: int = 20 * 10**9  # the inversion cache, least recently used first out


def sweep(store: JobStore, scheduler: Scheduler, data: DataDir, retention: Retention,
          now: float | None = None) -> list[str]:
    """Delete finished jobs older than `keep_days`, then the oldest until the job folders
    fit in `keep_bytes`. Returns the ids deleted. Outputs are never touched."""
    now = time.time() if now is None else now
    deleted: list[str] = []
    finished = store.finished_jobs()
    if retention.keep_days > 0:
        cutoff = now - retention.keep_days * 86400
        for job_id, updated in finished:
            if updated < cutoff:
                _try_delete(store, scheduler, data, job_id, deleted)
    if retention.keep_bytes > 0:
        sizes = {job_id: tree_bytes(data.job(job_id)) for job_id, _ in finished if job_id not in deleted}
        total = tree_bytes(data.jobs) - tree_bytes(trash_folder(data))  # what is deleted already is not kept
        for job_id, _ in finished:
            if total <= retention.keep_bytes:
                break
            if job_id in sizes:
                if _try_delete(store, scheduler, data, job_id, deleted):
                    total -= sizes[job_id]
    return deleted


def _try_delete(store: JobStore, scheduler: Scheduler, data: DataDir, job_id: str, deleted: list[str]) -> bool:
    try:
        delete_job(store, scheduler, data, job_id)
    except DeleteRefused:
        return False
    deleted.append(job_id)
    return True


def trim_cache(cache_dir: Path | None, max_bytes: int) -> int:
    """Remove the least recently used inversion-cache entries until the cache fits.

    The cache touches an entry's modification time on every hit, so mtime order is
    use order. Returns the bytes freed.
    """
    if cache_dir is None or max_bytes <= 0 or not Path(cache_dir).is_dir():
        return 0
    entries = []
    for path in Path(cache_dir).glob("inversion-*.safetensors"):
        try:
            st = path.stat()
        except OSError:
            continue
        entries.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in entries)
    freed = 0
    for _, size, path in sorted(entries):
        if total <= max_bytes:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        freed += size
    return freed


def is_disk_full(exc: BaseException | None) -> bool:
    """True if `exc`, or anything it was raised from, says a disk (or quota) is full."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower():
            return True
        if "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class Reserve:
    """A few MB held in the data folder, given back when the disk fills up.

    With the disk full, SQLite cannot even record that the job failed; freeing the
    reserve first lets the `failed` event be stored, so no job is left `running`.
    """

    NAME = ".space-reserve"

    def __init__(self, data: DataDir, size: int = 4 << 20):
        self.path = data.root / self.NAME
        self.size = size

    def ensure(self) -> None:
        """(Re)create the reserve if there is room; quietly do without it otherwise."""
        if self.size <= 0:
            return
        try:
            if self.path.exists() and self.path.stat().st_size >= self.size:
                return
            with open(self.path, "wb") as f:
                # Real blocks, not a sparse file: only written bytes are taken from the disk.
                chunk = b"\0" * (1 << 20)
                for _ in range(self.size // len(chunk)):
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            try:
                self.path.unlink()
            except OSError:
                pass

    def release(self) -> None:
        try:
            self.path.unlink()
        except OSError:
            pass
