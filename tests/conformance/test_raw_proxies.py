"""docs/protocol.md, "Pixel payloads": `proxy_format: "raw"` proxies are the uint8 RGB pixels the
"png" proxy of the same job and frame decodes to, rows top to bottom, and a replay sends them again."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.conformance.conftest import Raw

PARAMS = {"prompt": "a watercolor painting", "steps": 2, "short_side": 64, "kf_interval": 2, "preview_every": 1}


def run_job(c: Raw, server, clip, fmt: str) -> tuple[str, list[tuple[dict, list[bytes]]]]:
    spec = {"input": str(clip), "params": PARAMS, "frames": "20:22", "proxy_size": 64, "proxy_format": fmt,
            "output": str(server.out / f"raw_proxies_{fmt}.mp4")}
    accepted = c.request("submit", {"spec": spec})
    assert accepted["type"] == "accepted", accepted
    rid = c.send("subscribe", {"from_seq": 1}, job=accepted["job"])
    events = list(c.events(rid, timeout=300))
    assert events[-1][0]["type"] == "done", events[-1]
    return accepted["job"], events[1:]


def proxies(events, kind: str) -> dict[tuple[int, int | None], tuple[dict, bytes]]:
    return {(h["body"]["frame"], h["body"]["step"]): (h["body"], b[0]) for h, b in events
            if h["type"] == "proxy" and h["body"]["kind"] == kind}


def raw_pixels(body: dict, data: bytes) -> np.ndarray:
    assert body["format"] == "raw" and len(data) == body["width"] * body["height"] * 3
    return np.frombuffer(data, np.uint8).reshape(body["height"], body["width"], 3)


def png_pixels(body: dict, data: bytes) -> np.ndarray:
    assert body["format"] == "png" and data[:4] == b"\x89PNG"
    with Image.open(io.BytesIO(data)) as picture:
        return np.asarray(picture.convert("RGB"))


@pytest.fixture(scope="module")
def jobs(server, shipped_clip, context):
    c = Raw(server.endpoint, context)
    try:
        return {fmt: run_job(c, server, shipped_clip, fmt) for fmt in ("png", "raw")}
    finally:
        c.close()


def test_a_raw_proxy_is_the_pixels_the_png_proxy_of_the_same_frame_decodes_to(jobs):
    (_, png_events), (_, raw_events) = jobs["png"], jobs["raw"]
    for kind in ("frame", "preview"):
        png, raw = proxies(png_events, kind), proxies(raw_events, kind)
        assert png and sorted(png) == sorted(raw), kind
        for key, (body, data) in raw.items():
            assert (body["width"], body["height"]) == (png[key][0]["width"], png[key][0]["height"])
            # Finished frames are the same pixels in both jobs; a preview is a mid-denoising
            # estimate that two runs need not agree on to the last bit, so only its layout is checked.
            if kind == "frame":
                assert np.array_equal(raw_pixels(body, data), png_pixels(*png[key])), (kind, key)
            else:
                assert raw_pixels(body, data).shape == png_pixels(*png[key]).shape
    frames = proxies(raw_events, "frame")
    assert {(b["width"], b["height"]) for b, _ in frames.values()} == {(78, 64)}  # 176x144 at proxy_size 64


def test_a_replay_sends_the_raw_proxies_first_sent(raw, jobs):
    job, events = jobs["raw"]
    c = raw()
    rid = c.send("subscribe", {"from_seq": 1}, job=job)
    replayed = list(c.events(rid))[1:]
    assert proxies(replayed, "frame") == proxies(events, "frame")
    assert proxies(replayed, "preview") == proxies(events, "preview")


def test_an_unknown_proxy_format_is_refused_by_name(raw, server, shipped_clip):
    spec = {"input": str(shipped_clip), "params": PARAMS, "frames": "20:21", "proxy_format": "webp"}
    reply = raw().request("submit", {"spec": spec})
    assert reply["type"] == "error" and reply["body"]["field"] == "body.spec.proxy_format", reply
    assert "'raw'" in reply["body"]["hint"] or "'raw'" in reply["body"].get("message", ""), reply
