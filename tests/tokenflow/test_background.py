"""The engine's read-ahead and finisher threads: order, bounds, failures and cancels reach the engine's thread."""

from __future__ import annotations

import threading
import time
from contextlib import closing

import pytest

from tokenflow.background import Finisher, read_ahead
from tokenflow.events import Cancelled


def test_read_ahead_keeps_order_runs_on_item_ahead_and_stays_bounded():
    produced: list[int] = []
    threads: set[str] = set()

    def source():
        for i in range(40):
            produced.append(i)
            yield i

    seen = []
    with closing(read_ahead(source(), 3, lambda item: threads.add(threading.current_thread().name))) as items:
        for item in items:
            time.sleep(0.002)
            # depth 3 waiting, one in the producer's hand, one being consumed
            assert len(produced) - len(seen) <= 3 + 2
            seen.append(item)
    assert seen == list(range(40))
    assert threads == {"tokenflow-read-ahead"}


def test_read_ahead_raises_the_sources_error_on_the_consumer():
    def source():
        yield 1
        raise Cancelled()

    with pytest.raises(Cancelled):
        list(read_ahead(source(), 2))


def test_leaving_early_stops_and_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            yield from range(10_000)
        finally:
            closed.set()

    with closing(read_ahead(source(), 2)) as items:
        for item in items:
            if item == 3:
                break
    assert closed.wait(5)


def test_finisher_runs_in_order_and_raises_the_works_failure_at_the_next_put():
    done: list[int] = []

    def work(item: int) -> None:
        if item == 5:
            raise OSError("disk on fire")
        done.append(item)

    with pytest.raises(OSError, match="disk on fire"):
        with Finisher(work, 2, lambda: False, Cancelled) as finisher:
            for i in range(100):
                finisher.put(i)
    assert done == [0, 1, 2, 3, 4]


def test_finisher_bounds_what_waits_and_a_cancel_wakes_a_blocked_put():
    cancel = threading.Event()
    started = threading.Event()

    def slow(item: int) -> None:
        started.set()
        time.sleep(0.2)

    finisher = Finisher(slow, 1, cancel.is_set, Cancelled)
    finisher.put(0)
    started.wait(5)
    finisher.put(1)  # waits in the queue
    threading.Timer(0.05, cancel.set).start()
    began = time.monotonic()
    with pytest.raises(Cancelled):
        finisher.put(2)  # the queue is full: blocks until the cancel
    assert time.monotonic() - began < 0.2 + 0.15
    finisher.stop()
