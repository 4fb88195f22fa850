"""The wire format: round trips, and every kind of malformed input named precisely."""

from __future__ import annotations

import random

import msgpack
import pytest

from bridge.wire import protocol as p


def _req(header: dict, *blobs: bytes) -> list:
    return [msgpack.packb(header, use_bin_type=True), *blobs]


def _decode_request(frames: list) -> p.Envelope:
    return p.decode(frames, allowed=p.REQUEST_TYPES)


def test_submit_round_trip():
    spec = p.JobSpec(input="/clips/a.mp4", params={"prompt": "a watercolor", "steps": 4}, frames="10:20")
    env = p.Envelope(p.Submit(spec=spec), rid=7)
    out = _decode_request(p.encode(env))
    assert out == env
    assert out.type == "submit"


@pytest.mark.parametrize("cls", [c for c in (*p.REQUESTS, *p.REPLIES, *p.EVENTS) if c not in (p.Submit, p.JobStatus, p.Reorder, p.Read,
                                                                                         p.UploadOpen, p.UploadFrames, p.UploadDelete)])
def test_every_type_round_trips_with_defaults(cls):
    blobs = (b"\x01\x02",) * cls.BLOBS
    env = p.Envelope(cls(), rid=1, job="j1", seq=3, blobs=blobs)
    out = p.decode(p.encode(env), strict=True, max_bytes=None)
    assert out.body == env.body and out.seq == 3 and out.job == "j1"
    assert [bytes(b) for b in out.blobs] == list(blobs)


def test_reorder_round_trip():
    env = p.Envelope(p.Reorder(position=0), rid=2, job="j")
    assert _decode_request(p.encode(env)) == env


def test_frame_event_carries_pixels_outside_msgpack():
    pixels = bytes(range(256)) * 3
    env = p.Envelope(p.Frame(frame=101, shape=[16, 16, 3]), job="abc", seq=9, blobs=(pixels,))
    frames = p.encode(env)
    assert len(frames) == 2 and frames[1] is pixels
    assert pixels not in frames[0]
    out = p.decode(frames, strict=False, max_bytes=None)
    assert out.body.frame == 101 and out.blobs[0] == pixels


def test_job_info_nested_round_trip():
    info = p.JobInfo(
        id="j", state="queued", created=1.0, updated=2.0, input="/a", prompt="x", frames=None, output=None,
        priority=0, position=0, last_seq=1, attempts=0, outputs=[], error=None, progress={"stage": "edit"},
    )
    out = p.decode(p.encode(p.Envelope(p.JobStatus(info=info))), max_bytes=None)
    assert out.body.info == info


def test_client_side_tolerates_new_fields():
    frames = _req({"v": 1, "type": "progress", "job": "j", "seq": 2, "body": {"stage": "edit", "new_thing": 1}})
    assert p.decode(frames, strict=False).body.stage == "edit"
    with pytest.raises(p.ProtocolError) as err:
        p.decode(frames, strict=True)
    assert err.value.field == "body.new_thing"


@pytest.mark.parametrize(
    "frames, code, field",
    [
        ([], "bad_message", None),
        ([b"\xc1garbage"], "bad_header", None),
        ([msgpack.packb([1, 2])], "bad_header", None),
        (_req({"type": "hello"}), "bad_field", "v"),
        (_req({"v": 99, "type": "hello"}), "bad_version", "v"),
        (_req({"v": 1}), "bad_field", "type"),
        (_req({"v": 1, "type": "launch_missiles"}), "unknown_type", "type"),
        (_req({"v": 1, "type": "welcome"}), "unknown_type", "type"),  # a reply is no request
        (_req({"v": 1, "type": "hello", "rid": -1}), "bad_field", "rid"),
        (_req({"v": 1, "type": "hello", "rid": "seven"}), "bad_field", "rid"),
        (_req({"v": 1, "type": "hello", "extra": 1}), "bad_field", "extra"),
        (_req({"v": 1, "type": "cancel"}), "bad_field", "job"),
        (_req({"v": 1, "type": "cancel", "job": "../../etc"}), "bad_field", "job"),
        (_req({"v": 1, "type": "status", "job": "j", "seq": -5}), "bad_field", "seq"),
        (_req({"v": 1, "type": "submit", "body": []}), "bad_field", "body"),
        (_req({"v": 1, "type": "submit", "body": {}}), "bad_field", "body.spec"),
        (_req({"v": 1, "type": "submit", "body": {"spec": {"params": {}}}}), "bad_field", "body.spec.input"),
        (_req({"v": 1, "type": "submit", "body": {"spec": {"input": 5, "params": {}}}}), "bad_field", "body.spec.input"),
        (_req({"v": 1, "type": "submit", "body": {"spec": {"input": "a", "params": {"steps": [1]}}}}),
         "bad_field", "body.spec.params.steps"),
        (_req({"v": 1, "type": "submit", "body": {"spec": {"input": "a", "params": {}, "proxy_size": 1}}}),
         "bad_field", "body.spec.proxy_size"),
        (_req({"v": 1, "type": "submit", "body": {"spec": {"input": "a", "params": {}, "priority": True}}}),
         "bad_field", "body.spec.priority"),
        (_req({"v": 1, "type": "subscribe", "job": "j", "body": {"from_seq": 0}}), "bad_field", "body.from_seq"),
        (_req({"v": 1, "type": "fetch", "job": "j", "body": {"what": "secrets"}}), "bad_field", "body.what"),
        (_req({"v": 1, "type": "fetch", "job": "j", "body": {"what": "frames", "first": 9, "last": 2}}),
         "bad_field", "body.first"),
        (_req({"v": 1, "type": "list", "body": {"states": ["zombie"]}}), "bad_field", "body.states"),
        (_req({"v": 1, "type": "reorder", "job": "j", "body": {}}), "bad_field", "body"),
        (_req({"v": 1, "type": "hello"}, b"pixels?"), "bad_message", None),
    ],
)
def test_malformed_requests_are_named(frames, code, field):
    with pytest.raises(p.ProtocolError) as err:
        _decode_request(frames)
    assert err.value.code == code
    if field is not None:
        assert err.value.field == field
    assert str(err.value)


def test_error_keeps_request_id_for_the_reply():
    with pytest.raises(p.ProtocolError) as err:
        _decode_request(_req({"v": 1, "type": "nope", "rid": 42}))
    assert err.value.rid == 42


def test_size_limit():
    big = _req({"v": 1, "type": "hello", "body": {"client": "x" * 2000}})
    with pytest.raises(p.ProtocolError) as err:
        p.decode(big, allowed=p.REQUEST_TYPES, max_bytes=1000)
    assert err.value.code == "too_large"


def test_non_finite_float_rejected():
    frames = _req({"v": 1, "type": "progress", "body": {"elapsed_s": float("nan")}})
    with pytest.raises(p.ProtocolError):
        p.decode(frames)


def test_random_garbage_never_escapes_as_other_exceptions():
    rng = random.Random(1)
    valid = p.encode(p.Envelope(p.Submit(spec=p.JobSpec(input="a", params={"prompt": "x"})), rid=1))[0]
    for _ in range(3000):
        kind = rng.random()
        if kind < 0.3:
            raw = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        elif kind < 0.7:
            raw = bytearray(valid)
            for _ in range(rng.randint(1, 5)):
                raw[rng.randrange(len(raw))] = rng.getrandbits(8)
            raw = bytes(raw)
        else:
            raw = valid[: rng.randint(0, len(valid))]
        try:
            _decode_request([raw])
        except p.ProtocolError:
            pass
