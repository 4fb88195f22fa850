"""A writer that fails on its own thread fails the job with its reason, and leaves nothing that looks finished."""

from __future__ import annotations

import errno

from bridge import media
from bridge.wire.client import EventKind


def test_a_writer_failing_mid_job_fails_it_with_the_writers_reason(harness, monkeypatch):
    real = media.writers.MovieWriter._write
    writes = [0]

    def failing(self, image):
        writes[0] += 1
        if writes[0] == 4:
            raise OSError(errno.EIO, "Input/output error")
        real(self, image)

    monkeypatch.setattr(media.writers.MovieWriter, "_write", failing)
    c = harness.client()
    spec = harness.spec(frames="0:11")
    job = c.submit(spec).job
    end = c.wait(job)
    assert end.kind is EventKind.FAILED
    assert end.body.code == "media_error"
    assert "Writing frame 3" in end.body.message and "Input/output error" in end.body.message
    assert c.status(job).outputs == []
    assert list((harness.root / "out").iterdir()) == []  # no output, no partial
    monkeypatch.setattr(media.writers.MovieWriter, "_write", real)
    assert c.wait(c.submit(harness.spec(prompt="ok")).job).kind is EventKind.DONE  # the server goes on
