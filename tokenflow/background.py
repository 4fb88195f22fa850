"""Host work beside the thread that drives the device: a bounded read-ahead, and a bounded finisher.

The engine's own thread should only launch device work. Decoding the source and hashing
its pixels (`read_ahead`) run ahead of it on one thread; everything after the VAE
decoder (the resize to the source size, the conversion to 8 bit and float, and whatever
the caller does with a finished frame) runs behind it on another (`Finisher`).

Both queues are bounded, so a slow consumer or a slow disk slows the job instead of
growing memory; an exception on either thread is raised on the engine's thread at its
next hand-over (the first one wins), so a failed writer fails the job with its own reason.
These live here rather than in bridge because tokenflow imports nothing of the others.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_POLL_S = 0.05  # how often a blocked hand-over looks at the other side's failure or a cancel
_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def read_ahead(items: Iterable[T], depth: int, on_item: Callable[[T], None] | None = None) -> Generator[T, None, None]:
    """`items` produced on a thread of their own, at most `depth` ahead of the consumer.

    `on_item` runs on that thread, in order, before each item is handed over (the
    digest of the source). Leaving the loop early (an exception, a cancel) stops the
    producer and closes `items`, so a decoder is never left open.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if on_item is not None:
                    on_item(item)
                _put_unless_stopped(handoff, item, stop)
                if stop.is_set():
                    return
            _put_unless_stopped(handoff, _END, stop)
        except BaseException as error:  # handed to the consumer, who raises it
            _put_unless_stopped(handoff, _Failure(error), stop)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="tokenflow-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        _drain(handoff)
        thread.join()


def _put_unless_stopped(handoff: queue.Queue, item: Any, stop: threading.Event) -> None:
    """Put `item`, waiting for room, unless the consumer stops first (then it is dropped)."""
    while not stop.is_set():
        try:
            handoff.put(item, timeout=_POLL_S)
            return
        except queue.Full:
            continue


def _drain(handoff: queue.Queue) -> None:
    try:
        while True:
            handoff.get_nowait()
    except queue.Empty:
        pass


class Finisher(Generic[T]):
    """Runs `work(item)` for every item `put`, in order, on one thread, at most `depth` waiting.

    `put` blocks while the queue is full, and raises what `work` raised (once it has),
    or `cancelled()`'s exception when `should_cancel` turns true while it waits. `finish`
    waits for all the work and raises its failure; `stop` drops what waits and joins.
    Use as a context manager: a normal exit finishes, an exception stops.
    """

    def __init__(self, work: Callable[[T], None], depth: int, should_cancel: Callable[[], bool],
                 cancelled: Callable[[], BaseException], name: str = "tokenflow-finisher"):
        self._work = work
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._should_cancel = should_cancel
        self._cancelled = cancelled
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END or self._stop.is_set():
                return
            try:
                self._work(item)
            except BaseException as error:
                self._error = error
                self._stop.set()
                _drain(self._queue)  # a producer blocked on a full queue wakes to see the failure
                return

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        while True:
            self._raise_failure()
            if self._should_cancel():
                raise self._cancelled()
            if self._stop.is_set():
                raise RuntimeError("put() on a stopped finisher")
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def finish(self) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(_END, timeout=_POLL_S)
                break
            except queue.Full:
                continue
        self._thread.join()
        self._raise_failure()

    def stop(self) -> None:
        self._stop.set()
        _drain(self._queue)
        try:
            self._queue.put_nowait(_END)
        except queue.Full:
            pass
        self._thread.join()

    def __enter__(self) -> Finisher[T]:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.stop()
