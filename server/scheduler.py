"""Which job runs next: a priority queue (FIFO within a priority), the running slots (one
for the local worker, one per worker actor on a Ray cluster), and cancel requests.

One lock guards all three, so "is this job queued, running, or neither?" has one
answer at a time: a cancel can never fall between the worker taking a job and the job
being marked as running. The store persists priority and order; this object is the
in-memory view the worker blocks on, rebuilt from the store at start.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

CancelOutcome = Literal["removed", "signalled", "unknown"]


@dataclass
class Entry:
    job_id: str
    priority: int
    order: int

    def key(self) -> tuple[int, int]:
        return (-self.priority, self.order)


class Scheduler:
    def __init__(self, entries: Iterable[tuple[str, int, int]] = (), paused: bool = False):
        self._cond = threading.Condition()
        self._paused = paused  # paused: the running job finishes, `take` hands out nothing new
        self._queue: list[Entry] = sorted((Entry(*e) for e in entries), key=Entry.key)
        self._running: list[str] = []  # in the order taken; one job locally, one per worker on a cluster
        self._cancel: set[str] = set()
        self._stopped = False

    # --- queue ---

    def push(self, job_id: str, priority: int, order: int) -> int:
        """Queue a job; returns its position (0 = next)."""
        with self._cond:
            self._queue.append(Entry(job_id, priority, order))
            self._queue.sort(key=Entry.key)
            self._cond.notify_all()
            position = self._index(job_id)
            assert position is not None, "just appended"
            return position

    def position_for(self, priority: int) -> int:
        """Where a job of this priority submitted now would land."""
        with self._cond:
            return sum(1 for e in self._queue if e.priority >= priority)

    def position(self, job_id: str) -> int | None:
        with self._cond:
            return self._index(job_id)

    def snapshot(self) -> list[Entry]:
        with self._cond:
            return [Entry(e.job_id, e.priority, e.order) for e in self._queue]

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def reorder(self, job_id: str, *, priority: int | None = None, position: int | None = None) -> list[Entry] | None:
        """Change a queued job's priority, or move it to `position` (0 = next).

        A move gives the job the priority of the job it lands in front of (or behind,
        at the end), so the order stays sorted by priority, then renumbers the order of
        every queued job. Returns the entries to persist, or None if the job is not queued.
        """
        with self._cond:
            i = self._index(job_id)
            if i is None:
                return None
            entry = self._queue.pop(i)
            if position is None:
                entry.priority = priority if priority is not None else entry.priority
                self._queue.append(entry)
                self._queue.sort(key=Entry.key)
            else:
                at = min(position, len(self._queue))
                neighbour = self._queue[at] if at < len(self._queue) else (self._queue[-1] if self._queue else None)
                if neighbour is not None:
                    entry.priority = neighbour.priority
                elif priority is not None:
                    entry.priority = priority
                self._queue.insert(at, entry)
            base = min((e.order for e in self._queue), default=0)
            for n, e in enumerate(self._queue):
                e.order = base + n
            return self.snapshot()

    def _index(self, job_id: str) -> int | None:
        for i, e in enumerate(self._queue):
            if e.job_id == job_id:
                return i
        return None

    # --- the running slot ---

    def take(self, timeout: float | None = None) -> str | None:
        """Block until a job is queued (or timeout / stop); it becomes the running job."""
        with self._cond:
            if not self._cond.wait_for(lambda: (self._queue and not self._paused) or self._stopped, timeout):
                return None
            if self._stopped:
                return None
            entry = self._queue.pop(0)
            self._running.append(entry.job_id)
            return entry.job_id

    def finish(self, job_id: str) -> None:
        with self._cond:
            if job_id in self._running:
                self._running.remove(job_id)
            self._cancel.discard(job_id)
            self._cond.notify_all()

    # --- pause (the whole queue) ---

    def set_paused(self, paused: bool) -> None:
        with self._cond:
            self._paused = paused
            self._cond.notify_all()

    @property
    def paused(self) -> bool:
        with self._cond:
            return self._paused

    @property
    def current(self) -> str | None:
        """The running job taken first (the only one with the local worker)."""
        with self._cond:
            return self._running[0] if self._running else None

    def is_running(self, job_id: str) -> bool:
        with self._cond:
            return job_id in self._running

    # --- cancel ---

    def cancel(self, job_id: str) -> CancelOutcome:
        """Removed from the queue, or signalled to the running job, or neither."""
        with self._cond:
            i = self._index(job_id)
            if i is not None:
                del self._queue[i]
                return "removed"
            if job_id in self._running:
                self._cancel.add(job_id)
                return "signalled"
            return "unknown"

    def remove_if_queued(self, job_id: str) -> bool:
        """Take a queued job out of the queue (for delete); never touches a running one."""
        with self._cond:
            i = self._index(job_id)
            if i is None:
                return False
            del self._queue[i]
            return True

    def cancel_requested(self, job_id: str) -> bool:
        with self._cond:
            return job_id in self._cancel

    def stop(self) -> None:
        """Wake a blocked `take` for shutdown; the running job is asked to stop."""
        with self._cond:
            self._stopped = True
            self._cancel.update(self._running)
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        with self._cond:
            return self._stopped
