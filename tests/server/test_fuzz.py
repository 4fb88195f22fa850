"""No input brings the server down: thousands of bad messages, then a normal job."""

from __future__ import annotations

from bridge.wire.client import EventKind
from tests.server.fuzz import fuzz


def test_fuzz_then_a_normal_job(harness):
    c = harness.client()
    job = c.submit(harness.spec(frames="0:3")).job
    replies = fuzz(harness.endpoint, 3000, seed=7, job=job, oversize=2 << 20)
    assert replies > 2500  # nearly every message gets an answer (an error naming the problem)
    front = harness.server.front
    assert front.stats["rejected"] > 2000
    c2 = harness.client()
    assert c2.wait(job).kind is EventKind.DONE
    assert c2.wait(c2.submit(harness.spec(prompt="after")).job).kind is EventKind.DONE
