"""Finished frames fanned out to their consumers (the output writer, the server's store and
proxies), each on a thread of its own behind a queue bounded in frames and in bytes.

The engine hands a frame over and goes on; a consumer slower than the engine (a
throttled disk, a heavy encoder) fills its queue and then holds the engine back at the
hand-over, so memory stays bounded whatever the disk does. The first consumer to fail
stops every hand-over: `put` and `close` raise its own exception (a MediaError keeps its
message, a full disk stays recognisable), and the caller aborts its writer, which removes
everything it wrote, so nothing half-done looks finished.

Each consumer sees its frames in the order they were put; consumers run independently.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_FRAMES = 4
DEFAULT_MAX_BYTES = 128 << 20  # a 1080p float frame is 25 MB, a 4K one 100 MB: at least one always fits


@dataclass
class SinkStats:
    """What one consumer's queue held at most, and how long its producer waited for room."""

    peak_frames: int = 0
    peak_bytes: int = 0
    waited_s: float = 0.0
    done: int = 0


class _Sink:
    def __init__(self, name: str, work: Callable[[Any], None], max_frames: int, max_bytes: int,
                 failed: Callable[[BaseException], None]):
        self.name = name
        self.work = work
        self.max_frames = max(1, max_frames)
        self.max_bytes = max_bytes
        self.stats = SinkStats()
        self._failed = failed
        self._items: deque[tuple[Any, int]] = deque()
        self._bytes = 0
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"frames-{name}", daemon=True)
        self._thread.start()

    def has_room(self, nbytes: int) -> bool:
        # An empty queue always takes one item, so a frame larger than the budget still passes.
        return not self._items or (len(self._items) < self.max_frames and self._bytes + nbytes <= self.max_bytes)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items:
                    return
                item, _ = self._items[0]
            try:
                self.work(item)
            except BaseException as error:
                self._failed(error)
                with self._cond:
                    self._items.clear()
                    self._bytes = 0
                    self._cond.notify_all()
                return
            with self._cond:
                _, nbytes = self._items.popleft()  # counted until done: its memory is held until then
                self._bytes -= nbytes
                self.stats.done += 1
                self._cond.notify_all()


class FrameSinks:
    """Named consumers, each `work(item)` on its own thread; `put(name, item, nbytes)` hands one over.

    Use as a context manager, or call `close()` (wait for everything, raise the first
    failure) or `abort()` (drop what waits, wait for what runs; raises nothing).
    """

    def __init__(self, consumers: Mapping[str, Callable[[Any], None]], *, max_frames: int = DEFAULT_MAX_FRAMES,
                 max_bytes: int = DEFAULT_MAX_BYTES):
        self._error: BaseException | None = None
        self._error_lock = threading.Lock()
        self._sinks = {name: _Sink(name, work, max_frames, max_bytes, self._fail) for name, work in consumers.items()}

    @property
    def stats(self) -> dict[str, SinkStats]:
        return {name: sink.stats for name, sink in self._sinks.items()}

    def _fail(self, error: BaseException) -> None:
        with self._error_lock:
            if self._error is None:
                self._error = error
        for sink in self._sinks.values():  # wake every waiting producer to see it
            with sink._cond:
                sink._cond.notify_all()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, name: str, item: Any, nbytes: int = 0) -> None:
        """Queue `item` for consumer `name`, waiting while its queue is full; raises the first failure."""
        sink = self._sinks[name]
        started = time.perf_counter()
        with sink._cond:
            while not sink.has_room(nbytes) and self._error is None:
                sink._cond.wait()
            self._raise()
            if sink._closing:
                raise RuntimeError(f"put() on the closed frame consumer {name!r}")
            sink._items.append((item, nbytes))
            sink._bytes += nbytes
            sink.stats.peak_frames = max(sink.stats.peak_frames, len(sink._items))
            sink.stats.peak_bytes = max(sink.stats.peak_bytes, sink._bytes)
            sink.stats.waited_s += time.perf_counter() - started
            sink._cond.notify_all()

    def _join(self) -> None:
        for sink in self._sinks.values():
            with sink._cond:
                sink._closing = True
                sink._cond.notify_all()
        for sink in self._sinks.values():
            sink._thread.join()

    def close(self) -> None:
        """Wait until every consumer has done everything handed to it; raise the first failure."""
        self._join()
        self._raise()

    def abort(self) -> None:
        """Drop what has not started, wait for what runs (a writer is never aborted mid-frame)."""
        for sink in self._sinks.values():
            with sink._cond:
                # Keep the running item (the first) counted: its thread pops it when done.
                while len(sink._items) > 1:
                    _, nbytes = sink._items.pop()
                    sink._bytes -= nbytes
        self._join()

    def __enter__(self) -> FrameSinks:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
