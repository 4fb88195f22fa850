"""Finished frames fanned out to consumer threads: bounded memory under a slow disk, failures raised as themselves."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bridge.media import MediaError
from bridge.media.pipeline import FrameSinks


def test_a_throttled_writer_slows_the_producer_and_memory_stays_bounded():
    frame = np.zeros((270, 480, 3), np.float32)  # 1.5 MB
    delay, count = 0.02, 30
    written: list[int] = []

    def slow_writer(item) -> None:
        time.sleep(delay)  # a slow disk
        written.append(id(item))

    started = time.perf_counter()
    with FrameSinks({"output": slow_writer, "store": lambda item: None}, max_frames=4,
                    max_bytes=3 * frame.nbytes) as sinks:
        for _ in range(count):
            sinks.put("output", frame.copy(), frame.nbytes)
            sinks.put("store", frame, frame.nbytes)
    elapsed = time.perf_counter() - started
    stats = sinks.stats["output"]
    assert len(written) == count
    # The bytes bound (three frames) holds, not the frame bound (four): what the queue held at most.
    assert stats.peak_frames == 3 and stats.peak_bytes == 3 * frame.nbytes
    assert stats.waited_s > (count - 4) * delay * 0.5  # the producer was held back, not buffered ahead
    assert elapsed >= count * delay


def test_one_frame_larger_than_the_budget_still_passes():
    with FrameSinks({"output": lambda item: None}, max_bytes=10) as sinks:
        sinks.put("output", b"x" * 100, 100)
        sinks.put("output", b"x" * 100, 100)
    assert sinks.stats["output"].done == 2


def test_a_failed_writer_stops_the_producer_with_its_own_error():
    release = threading.Event()

    def failing(item: int) -> None:
        if item == 2:
            raise MediaError("Writing frame 2 failed (No space left on device): check free disk space.")

    stored: list[int] = []
    with pytest.raises(MediaError, match="No space left"):
        with FrameSinks({"output": failing, "store": stored.append}, max_frames=2) as sinks:
            for i in range(1000):
                sinks.put("output", i)
                sinks.put("store", i)
    release.set()
    assert len(stored) < 1000  # the other consumer stopped being fed too


def test_abort_drops_what_waits_and_waits_for_the_running_frame():
    running = threading.Event()
    finished: list[int] = []

    def slow(item: int) -> None:
        running.set()
        time.sleep(0.1)
        finished.append(item)

    sinks = FrameSinks({"output": slow}, max_frames=8)
    for i in range(5):
        sinks.put("output", i)
    running.wait(5)
    sinks.abort()
    assert finished == [0]  # the frame being written finished; nothing after it started
