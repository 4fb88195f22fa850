"""A job retried after a crash replaces only what it finished itself, never an older file."""

from __future__ import annotations

import os

from bridge.wire.client import EventKind


def test_retry_replaces_its_own_finished_output(harness):
    c = harness.client()
    job = c.submit(harness.spec()).job
    output = c.wait(job).body.outputs[0]
    harness.rewind_to_running(job, before_frame=13)  # kill -9 after the output was finished, before `done`
    harness.start()
    assert harness.client().wait(job).kind is EventKind.DONE
    assert os.path.exists(output)


def test_retry_never_replaces_an_older_file(harness):
    c = harness.client()
    job = c.submit(harness.spec()).job
    output = c.wait(job).body.outputs[0]
    harness.rewind_to_running(job, before_frame=13)  # kill -9 after the output was finished, before `done`
    # Someone's file, older than the job, now sits at the output path.
    with open(output, "wb") as handle:
        handle.write(b"an older file")
    os.utime(output, (1_000_000_000, 1_000_000_000))
    harness.start()
    end = harness.client().wait(job)
    assert end.kind is EventKind.FAILED and "already exists and is not replaced" in end.body.message
    with open(output, "rb") as handle:
        assert handle.read() == b"an older file"
    assert sorted(os.listdir(os.path.dirname(output))) == [os.path.basename(output)]  # no partial left
