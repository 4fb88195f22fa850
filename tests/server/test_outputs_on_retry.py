"""A job retried after a crash replaces only what it finished itself, never an older file."""

from __future__ import annotations

import os

from bridge.client import EventKind
from server.store import JobStore


def _crash_after_writing(harness, job: str) -> None:
    """Rewind the store to "running, nothing announced after frame 12", as after a kill -9
    that came after the output file was finished but before `done` was recorded."""
    harness.stop()
    store = JobStore(harness.config.data.database)
    with store._txn() as db:
        cut = db.execute("SELECT MIN(seq) FROM events WHERE job_id = ? AND type = 'frame' AND frame = 13",
                         (job,)).fetchone()[0]
        db.execute("DELETE FROM events WHERE job_id = ? AND seq >= ?", (job, cut - 1))
        db.execute("UPDATE jobs SET state = 'running', last_seq = ?, outputs = '[]' WHERE id = ?", (cut - 2, job))
    store.close()


def test_retry_replaces_its_own_finished_output(harness):
    c = harness.client()
    job = c.submit(harness.spec()).job
    output = c.wait(job).body.outputs[0]
    _crash_after_writing(harness, job)
    harness.start()
    assert harness.client().wait(job).kind is EventKind.DONE
    assert os.path.exists(output)


def test_retry_never_replaces_an_older_file(harness):
    c = harness.client()
    job = c.submit(harness.spec()).job
    output = c.wait(job).body.outputs[0]
    _crash_after_writing(harness, job)
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
