"""The `probe` request: answered with the clip's facts, off the front's thread."""

from __future__ import annotations

import threading
from fractions import Fraction

import pytest

from bridge.wire import protocol as p
from bridge.wire.client import ServerError
from tests.bridge.clips import make_clip


def test_probe_over_the_protocol(harness, tmp_path):
    clip = make_clip(tmp_path / "gaps.mp4", rate=Fraction(30), slots=[0, 1, 2, 5, 6])
    c = harness.client()
    assert "probe" in c.welcome.capabilities
    facts = c.probe(str(clip))
    assert (facts["frame_count"], facts["pictures"], facts["held_frames"]) == (7, 5, 2)
    assert facts["variable_rate"] is True and facts["frame_rate"] == "30/1"
    shipped = c.probe(str(harness.clip))
    assert shipped["frame_count"] == 120 and shipped["frame_rate"] == "30000/1001"
    with pytest.raises(ServerError) as err:
        c.probe(str(tmp_path / "missing.mp4"))
    assert err.value.code == "not_found" and err.value.field == "body.input"
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(ServerError) as err:
        c.probe(str(tmp_path / "notes.txt"))
    assert err.value.code == "media_error"


def test_a_slow_probe_does_not_hold_up_other_requests(harness, tmp_path, monkeypatch):
    """While a probe is stuck on a slow disk, the same client's other requests are answered."""
    import server.probe_request as probe_request

    release = threading.Event()
    real = probe_request.probe_facts

    def slow(path: str) -> dict:
        release.wait(10)
        return real(path)

    monkeypatch.setattr(probe_request, "probe_facts", slow)
    c = harness.client()
    rid = c._send(p.Probe(input=str(harness.clip)))
    assert c.list_jobs() == []  # answered although the probe has not finished
    release.set()
    reply = c._next(rid, None)
    c._forget(rid)
    assert reply.body.facts["frame_count"] == 120
