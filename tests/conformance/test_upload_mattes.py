"""Mattes as uploaded frames (docs/protocol.md, "Mattes as uploaded frames"), against a real
`tokenflow serve` with the tiny model, through the documented wire (raw ZeroMQ + msgpack):
an uploaded matte edits exactly as the same matte in a file, outside it the source comes
back exactly; `"alpha"` reads an RGBA upload's own alpha; the refusals name the matte."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from bridge import media
from tests.conformance.conftest import Raw, doc_section
from tests.conformance.test_upload_jobs import FIRST, frames_of, new_id, run, upload_all, upload_spec

PARAMS = {"prompt": "a watercolor painting", "steps": 2, "short_side": 64, "kf_interval": 2, "matte_feather": 2.0}
H, W = 144, 176
EDGE = 88  # the matte covers columns 0..87: the left half is edited
SECTION = "Mattes as uploaded frames"


@pytest.fixture(scope="module")
def clip_frames(shipped_clip) -> list[np.ndarray]:
    return list(media.read_frames(shipped_clip, 10, 13))


def half_matte(height: int, width: int) -> np.ndarray:
    """Left half white: H x W x 1 uint8."""
    picture = np.zeros((height, width, 1), np.uint8)
    picture[:, : width // 2] = 255
    return picture


@pytest.fixture(scope="module")
def files(clip_frames, server) -> dict[str, Path]:
    """The same source and matte as files: a lossless movie (decodes to exactly the frames) and a
    PNG sequence numbered like it, at half the source's size (the server resizes a matte)."""
    movie = server.out / "matte_source.mov"
    with av.open(str(movie), "w") as container:
        stream = container.add_stream("png", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "rgb24"
        for frame in clip_frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    small = half_matte(H // 2, W // 2)[..., 0]
    for n in range(4):
        av.VideoFrame.from_ndarray(small, format="gray").to_image().save(server.out / f"matte.{n:04d}.png")
    return {"movie": movie, "matte": server.out / "matte.%04d.png"}


@pytest.fixture(scope="module")
def uploaded(server, context, clip_frames) -> dict:
    """The source uploaded (uint8 RGB) and the half-size matte uploaded (one channel), edited."""
    c = Raw(server.endpoint, context)
    try:
        source, matte = new_id(), new_id()
        upload_all(c, source, clip_frames)
        upload_all(c, matte, [half_matte(H // 2, W // 2)] * 4)
        params = {**PARAMS, "matte": f"upload:{matte}"}
        accepted, events = run(c, upload_spec(server, source, "matte_uploaded", params=params))
        return {"source": source, "matte": matte, "params": params, "accepted": accepted, "frames": frames_of(events)}
    finally:
        c.close()


def test_an_uploaded_matte_keeps_the_source_outside_and_equals_the_same_job_from_files(raw, server, files,
                                                                                      clip_frames, uploaded):
    got = uploaded["frames"]
    assert sorted(got) == [FIRST + n for n in range(4)]
    for n in range(4):
        frame, source = got[FIRST + n], clip_frames[n]
        # Outside the matte (and its 2-pixel feather) the source's pixels, exactly.
        assert np.array_equal(frame[:, EDGE + 8:], source[:, EDGE + 8:]), n
        assert not np.array_equal(frame[:, : EDGE - 8], source[:, : EDGE - 8]), n  # inside: edited
    # The same job with the source and the matte as files gives the same frames, bit for bit.
    spec = {"input": str(files["movie"]), "frames": "0:3", "proxy_size": 64,
            "params": {**PARAMS, "matte": str(files["matte"])}, "output": str(server.out / "matte_from_files.mp4")}
    _, events = run(raw(), spec)
    from_files = frames_of(events)
    for n in range(4):
        assert np.array_equal(got[FIRST + n], from_files[n]), n


def test_alpha_of_an_rgba_upload_is_its_matte(raw, server, clip_frames, uploaded):
    c = raw()
    alpha = half_matte(H, W)
    rgba = [np.concatenate([f, alpha], axis=2) for f in clip_frames]
    upload = new_id()
    upload_all(c, upload, rgba)
    _, events = run(c, upload_spec(server, upload, "matte_alpha", params={**PARAMS, "matte": "alpha"}))
    got = frames_of(events)
    # The same edit as the RGB source with that alpha uploaded as a one-channel matte.
    matte = new_id()
    upload_all(c, matte, [alpha] * 4)
    rgb = new_id()
    upload_all(c, rgb, clip_frames)
    _, events = run(c, upload_spec(server, rgb, "matte_alpha_ref", params={**PARAMS, "matte": f"upload:{matte}"}))
    reference = frames_of(events)
    for n in range(4):
        frame = got[FIRST + n]
        assert frame.shape == (H, W, 4) and np.array_equal(frame[..., 3], alpha[..., 0])  # alpha comes back
        assert np.array_equal(frame[..., :3], reference[FIRST + n]), n
        assert np.array_equal(frame[:, EDGE + 8:, :3], clip_frames[n][:, EDGE + 8:]), n


def test_an_identical_matte_job_is_answered_from_the_finished_one_and_another_matte_is_not(raw, server, clip_frames,
                                                                                          uploaded):
    c = raw()
    # The same pixels under new ids: the same result, nothing runs.
    source, matte = new_id(), new_id()
    upload_all(c, source, clip_frames)
    upload_all(c, matte, [half_matte(H // 2, W // 2)] * 4)
    spec = upload_spec(server, source, "matte_uploaded", params={**PARAMS, "matte": f"upload:{matte}"})
    again = c.request("submit", {"spec": spec})
    assert again["type"] == "accepted" and again["job"] == uploaded["accepted"]["job"]
    # Another matte (the right half) under the same parameters is another result.
    other = new_id()
    upload_all(c, other, [half_matte(H // 2, W // 2)[:, ::-1].copy()] * 4)
    spec = upload_spec(server, source, "matte_uploaded", params={**PARAMS, "matte": f"upload:{other}"})
    accepted = c.request("submit", {"spec": {**spec, "output": str(server.out / "matte_other.mp4")}})
    assert accepted["type"] == "accepted" and accepted["job"] != uploaded["accepted"]["job"]


def test_a_matte_upload_that_is_short_missing_or_incomplete_is_refused_by_name(raw, server, clip_frames, uploaded):
    c = raw()
    short = new_id()
    upload_all(c, short, [half_matte(H, W)] * 2)  # frames FIRST, FIRST + 1 only
    cases = [
        (f"upload:{short}", "bad_range", f"{FIRST}..{FIRST + 1}"),
        ("upload:no-such-matte", "unknown_upload", "no-such-matte"),
        ("alpha", "bad_field", "no alpha"),  # the RGB source upload has none
    ]
    for matte, code, said in cases:
        spec = upload_spec(server, uploaded["source"], "refused", params={**PARAMS, "matte": matte})
        body = c.request("submit", {"spec": spec})["body"]
        assert (body["code"], body["field"]) == (code, "body.spec.params.matte"), body
        assert said in body["message"] and body["hint"], body
    incomplete = new_id()
    c.request("upload_open", {"upload": incomplete, "width": W, "height": H, "channels": 1, "dtype": "uint8",
                              "frame_rate": "24", "first": FIRST, "count": 4})
    spec = upload_spec(server, uploaded["source"], "refused", params={**PARAMS, "matte": f"upload:{incomplete}"})
    body = c.request("submit", {"spec": spec})["body"]
    assert (body["code"], body["field"]) == ("upload_incomplete", "body.spec.params.matte"), body
    # A one-channel upload is a matte, never a source.
    body = c.request("submit", {"spec": upload_spec(server, short, "refused")})["body"]
    assert (body["code"], body["field"]) == ("bad_field", "body.spec.upload") and "matte" in body["message"]


def test_the_documented_section_and_capability(raw):
    text = doc_section(SECTION)
    assert '"upload:ID"' in text and "alpha" in text and "luma" in text and '"matte_upload"' in text
    assert "matte_upload" in raw().request("hello", {"client": "conformance"})["body"]["capabilities"]
