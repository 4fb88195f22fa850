"""The upload messages (docs/protocol.md, "Jobs whose source is uploaded frames") on the wire."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from bridge.wire import protocol as p

OPEN: dict[str, Any] = dict(upload="u1", width=4, height=2, channels=4, dtype="uint16", frame_rate="30000/1001", first=1001, count=3)


def _request(env: p.Envelope, **kw) -> p.Envelope:
    return p.decode(p.encode(env), allowed=p.REQUEST_TYPES, **kw)


def test_open_round_trips_and_every_field_is_required():
    env = p.Envelope(p.UploadOpen(**OPEN), rid=1)
    assert _request(env) == env
    raw = p.encode_raw("upload_open", {k: v for k, v in OPEN.items() if k != "dtype"}, rid=2)
    with pytest.raises(p.ProtocolError) as exc:
        p.decode(raw, allowed=p.REQUEST_TYPES)
    assert (exc.value.code, exc.value.field, exc.value.rid) == ("bad_field", "body.dtype", 2)


@pytest.mark.parametrize("change,field", [
    (dict(upload="a b"), "body.upload"), (dict(width=0), "body.width"), (dict(height=16385), "body.height"),
    (dict(channels=2), "body.channels"), (dict(dtype="float16"), "body.dtype"),
    (dict(frame_rate="24.0"), "body.frame_rate"), (dict(frame_rate="0/1"), "body.frame_rate"),
    (dict(first=-1), "body.first"), (dict(count=0), "body.count"),
])
def test_open_ranges(change, field):
    with pytest.raises(p.ProtocolError) as exc:
        _request(p.Envelope(p.UploadOpen(**{**OPEN, **change}), rid=1))
    assert (exc.value.code, exc.value.field) == ("bad_field", field)


def test_frames_carry_one_binary_frame_per_part_and_may_be_larger_than_a_request():
    blobs = (b"\1" * 700_000, b"\2" * 700_000)
    parts = [p.UploadPart(frame=1001 + i, offset=0, end=True, crc32=zlib.crc32(b)) for i, b in enumerate(blobs)]
    env = p.Envelope(p.UploadFrames(upload="u1", parts=parts), rid=3, blobs=blobs)
    with pytest.raises(p.ProtocolError) as exc:  # over max_request_bytes without the upload allowance
        _request(env)
    assert exc.value.code == "too_large" and exc.value.rid == 3
    out = _request(env, max_upload_bytes=2 << 20)
    assert out.body == env.body and [bytes(b) for b in out.blobs] == list(blobs)
    with pytest.raises(p.ProtocolError) as exc:  # another type gets no allowance
        p.decode(p.encode_raw("list", {}, rid=4, blobs=blobs), allowed=p.REQUEST_TYPES, max_upload_bytes=2 << 20)
    assert exc.value.code == "too_large"
    with pytest.raises(p.ProtocolError) as exc:  # the blob count follows `parts`
        _request(p.Envelope(env.body, rid=5, blobs=blobs[:1]), max_upload_bytes=2 << 20)
    assert exc.value.code == "bad_message"


def test_submit_names_an_upload_or_a_file_not_both():
    spec = p.JobSpec(input="", params={"prompt": "x"}, upload="u1")
    body = _request(p.Envelope(p.Submit(spec=spec), rid=1)).body
    assert isinstance(body, p.Submit) and body.spec.upload == "u1"
    for bad, field in ((p.JobSpec(input="/a.mp4", params={"prompt": "x"}, upload="u1"), "body.spec.input"),
                       (p.JobSpec(input="", params={"prompt": "x"}, upload="no/slash"), "body.spec.upload"),
                       (p.JobSpec(input="", params={"prompt": "x"}), "body.spec.input")):
        with pytest.raises(p.ProtocolError) as exc:
            _request(p.Envelope(p.Submit(spec=bad), rid=1))
        assert exc.value.field == field


def test_the_documented_crc_check_value():
    assert zlib.crc32(b"123456789") == 0xCBF43926 == 3421780262
