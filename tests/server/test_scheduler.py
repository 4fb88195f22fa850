"""The queue: priorities, FIFO, reordering, the running slot, cancel."""

from __future__ import annotations

import threading
import time

from server.scheduler import Scheduler


def order(s: Scheduler) -> list[str]:
    return [e.job_id for e in s.snapshot()]


def test_fifo_within_priority_and_priority_first():
    s = Scheduler()
    s.push("a", 0, 1)
    s.push("b", 0, 2)
    assert s.push("c", 5, 3) == 0
    assert s.position_for(0) == 3
    assert s.position_for(5) == 1
    assert order(s) == ["c", "a", "b"]
    assert s.take(0) == "c" and s.current == "c"
    s.finish("c")
    assert s.current is None
    assert [s.take(0), s.take(0)] == ["a", "b"]
    assert s.take(0.01) is None


def test_rebuilt_from_store_entries():
    s = Scheduler([("x", 0, 9), ("y", 0, 3), ("z", 1, 10)])
    assert order(s) == ["z", "y", "x"]


def test_reorder_by_priority_and_by_position():
    s = Scheduler()
    for i, j in enumerate("abcd"):
        s.push(j, 0, i)
    s.reorder("d", priority=1)
    assert order(s) == ["d", "a", "b", "c"]
    changed = s.reorder("c", position=1)
    assert order(s) == ["d", "c", "a", "b"]
    # c landed in front of a: it takes a's priority; orders are renumbered and persisted
    assert [(e.job_id, e.priority) for e in changed] == [("d", 1), ("c", 0), ("a", 0), ("b", 0)]
    assert len({e.order for e in changed}) == 4
    s.reorder("d", position=99)
    assert order(s) == ["c", "a", "b", "d"]
    assert s.snapshot()[-1].priority == 0
    assert s.reorder("nope", priority=3) is None
    # a new job of priority 0 still goes to the back
    s.push("e", 0, 100)
    assert order(s)[-1] == "e"


def test_cancel_queued_removes_and_running_signals():
    s = Scheduler()
    s.push("a", 0, 1)
    s.push("b", 0, 2)
    assert s.cancel("b") == "removed"
    assert order(s) == ["a"]
    assert s.take(0) == "a"
    assert not s.cancel_requested("a")
    assert s.cancel("a") == "signalled"
    assert s.cancel_requested("a")
    s.finish("a")
    assert not s.cancel_requested("a")
    assert s.cancel("a") == "unknown"


def test_take_blocks_until_push_and_stop_wakes():
    s = Scheduler()
    got = []
    t = threading.Thread(target=lambda: got.append(s.take(5)))
    t.start()
    time.sleep(0.05)
    s.push("a", 0, 1)
    t.join(2)
    assert got == ["a"]
    t = threading.Thread(target=lambda: got.append(s.take(5)))
    t.start()
    time.sleep(0.05)
    s.stop()
    t.join(2)
    assert got == ["a", None]
    assert s.cancel_requested("a")  # the running job is asked to stop on shutdown
