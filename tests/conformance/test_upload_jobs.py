"""Jobs whose source is uploaded frames (docs/protocol.md), against a real `tokenflow serve`
with the tiny model, through the documented wire (raw ZeroMQ + msgpack) and the Python client."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from bridge import media
from bridge.wire import protocol as p
from bridge.wire.client import Client, ServerError
from tests.conformance.conftest import Raw, doc_section, names_in, parse_table, unquote

PARAMS = {"prompt": "a watercolor painting", "steps": 2, "short_side": 64, "kf_interval": 2, "preview_every": 1}
FIRST = 1001  # the host's number of the first uploaded frame
SECTION = "Jobs whose source is uploaded frames"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def clip_frames(shipped_clip) -> list[np.ndarray]:
    """Four real frames (176x144 RGB uint8) of the shipped clip."""
    return list(media.read_frames(shipped_clip, 10, 13))


@pytest.fixture(scope="module")
def lossless_movie(clip_frames, server) -> Path:
    """The same frames as a lossless PNG-in-QuickTime movie: a file that decodes to exactly them."""
    path = server.out / "lossless_source.mov"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png", rate=24)
        stream.width, stream.height, stream.pix_fmt = clip_frames[0].shape[1], clip_frames[0].shape[0], "rgb24"
        for frame in clip_frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert all(np.array_equal(a, b) for a, b in zip(media.read_frames(path, 0, 3), clip_frames))
    return path


def new_id() -> str:
    return secrets.token_hex(16)


def describe(upload: str, frames: list[np.ndarray], first: int = FIRST, frame_rate: str = "24") -> dict:
    h, w, c = frames[0].shape
    return {"upload": upload, "width": w, "height": h, "channels": c, "dtype": str(frames[0].dtype),
            "frame_rate": frame_rate, "first": first, "count": len(frames)}


def part(frame: int, data: bytes, offset: int = 0, end: bool = True, crc: int | None = None) -> dict:
    return {"frame": frame, "offset": offset, "end": end, "crc32": zlib.crc32(data) if crc is None else crc}


def send_frames(c: Raw, upload: str, frames: list[np.ndarray], numbers: list[int], first: int = FIRST) -> dict:
    """Every frame in `numbers` as one part of its own message; returns the last reply."""
    rids = []
    for n in numbers:
        data = frames[n - first].tobytes()
        rids.append(c.send("upload_frames", {"upload": upload, "parts": [part(n, data)]}, blobs=(data,)))
    replies = [c.reply(rid)[0] for rid in rids]
    assert all(r["type"] == "upload_state" for r in replies), replies
    return replies[-1]


def upload_all(c: Raw, upload: str, frames: list[np.ndarray], first: int = FIRST) -> dict:
    state = c.request("upload_open", describe(upload, frames, first))
    assert state["type"] == "upload_state", state
    state = send_frames(c, upload, frames, list(range(first, first + len(frames))), first)
    assert state["body"]["complete"] and state["body"]["have"] == [[first, first + len(frames) - 1]]
    return state


def run(c: Raw, spec: dict) -> tuple[dict, list[tuple[dict, list[bytes]]]]:
    """Submit, then every event of the job from seq 1 (with binary frames)."""
    accepted = c.request("submit", {"spec": spec})
    assert accepted["type"] == "accepted", accepted
    rid = c.send("subscribe", {"from_seq": 1}, job=accepted["job"])
    events = list(c.events(rid, timeout=300))
    assert events[-1][0]["type"] == "done", events[-1]
    return accepted, events[1:]


def frames_of(events) -> dict[int, np.ndarray]:
    return {h["body"]["frame"]: np.frombuffer(b[0], np.uint8).reshape(h["body"]["shape"])
            for h, b in events if h["type"] == "frame"}


def upload_spec(server, upload: str, name: str, **kw) -> dict:
    return {"input": "", "upload": upload, "params": PARAMS, "proxy_size": 64,
            "output": str(server.out / f"{name}.mp4"), **kw}


@pytest.fixture(scope="module")
def uploaded_job(server, context, clip_frames):
    """The four frames uploaded as uint8 RGB and edited: the reference for the tests below."""
    c = Raw(server.endpoint, context)
    try:
        upload = new_id()
        state = upload_all(c, upload, clip_frames)
        accepted, events = run(c, upload_spec(server, upload, "uploaded_rgb8"))
        return {"upload": upload, "digest": state["body"]["digest"], "accepted": accepted, "events": events,
                "frames": frames_of(events)}
    finally:
        c.close()


def test_upload_state_carries_exactly_its_documented_fields(raw, clip_frames):
    documented = {unquote(r["type"]): names_in(r["body"])
                  for r in parse_table(doc_section("Replies (server -> client, `rid` copied from the request)"))}
    state = raw().request("upload_open", describe(new_id(), clip_frames))
    assert set(state["body"]) == documented["upload_state"]
    assert state["body"]["have"] == [] and state["body"]["missing"] == 4 and state["body"]["digest"] is None
    assert state["body"]["frame_bytes"] == 176 * 144 * 3


def test_uploaded_frames_edit_exactly_as_tokenflow_submit_of_the_same_frames_in_a_file(raw, server, uploaded_job,
                                                                                      lossless_movie):
    result = subprocess.run(
        [sys.executable, "-m", "cli", "submit", str(lossless_movie), "-p", PARAMS["prompt"], "--frames", "0:3",
         "--steps", str(PARAMS["steps"]), "--size", str(PARAMS["short_side"]), "--kf-interval",
         str(PARAMS["kf_interval"]), "-o", str(server.out / "from_file.mp4"), "--detach", "--server", server.endpoint],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    c = raw()
    rid = c.send("subscribe", {"from_seq": 1}, job=result.stdout.strip())
    file_events = list(c.events(rid, timeout=300))
    assert file_events[-1][0]["type"] == "done", file_events[-1]
    from_file = frames_of(file_events)
    from_upload = uploaded_job["frames"]
    # Numbered with the host's frame numbers, at full resolution, the same pixels as the file job's.
    assert sorted(from_upload) == [FIRST, FIRST + 1, FIRST + 2, FIRST + 3]
    assert sorted(from_file) == [0, 1, 2, 3]
    for n in range(4):
        assert from_upload[FIRST + n].shape == (144, 176, 3)
        assert np.array_equal(from_upload[FIRST + n], from_file[n]), n
    proxies = [h["body"]["frame"] for h, _ in uploaded_job["events"]
               if h["type"] == "proxy" and h["body"]["kind"] == "frame"]
    assert proxies == [FIRST, FIRST + 1, FIRST + 2, FIRST + 3]
    done = uploaded_job["events"][-1][0]["body"]
    assert done["first_frame"] == FIRST and done["frames"] == 4


def test_resume_after_a_dropped_connection_sends_only_what_is_missing(raw, clip_frames, uploaded_job):
    upload = new_id()
    first = raw()
    assert first.request("upload_open", describe(upload, clip_frames))["body"]["missing"] == 4
    send_frames(first, upload, clip_frames, [FIRST, FIRST + 2])
    half = clip_frames[1].tobytes()[:5000]  # a frame cut off mid-way
    rid = first.send("upload_frames", {"upload": upload, "parts": [part(FIRST + 1, half, end=False)]}, blobs=(half,))
    assert first.reply(rid)[0]["body"]["have"] == [[FIRST, FIRST], [FIRST + 2, FIRST + 2]]
    first.close()  # the connection drops

    again = raw()
    state = again.request("upload_open", describe(upload, clip_frames))["body"]
    assert state["have"] == [[FIRST, FIRST], [FIRST + 2, FIRST + 2]] and state["missing"] == 2
    held = {n for lo, hi in state["have"] for n in range(lo, hi + 1)}
    missing = [n for n in range(FIRST, FIRST + 4) if n not in held]
    assert missing == [FIRST + 1, FIRST + 3]
    state = send_frames(again, upload, clip_frames, missing)["body"]  # the half frame again from offset 0
    assert state["complete"] and state["missing"] == 0
    # The same pixels give the same digest whatever the id and however they arrived.
    assert state["digest"] == uploaded_job["digest"]
    # Opening again with another description is refused by name.
    other = {**describe(upload, clip_frames), "frame_rate": "25"}
    refused = again.request("upload_open", other)["body"]
    assert (refused["code"], refused["field"]) == ("upload_mismatch", "body.upload") and refused["hint"]


def test_over_budget_uploads_are_refused_before_any_pixel_is_sent(raw):
    rows = {unquote(r["field"]): float(r["default"]) for r in parse_table(doc_section("Limits"))}
    c = raw()
    side = 16384  # 4 GiB a frame as float RGBA: five of them pass the 16 GiB budget
    count = int(rows["max_upload_bytes"] // (side * side * 16)) + 1
    body = {"upload": new_id(), "width": side, "height": side, "channels": 4, "dtype": "float32",
            "frame_rate": "24", "first": 0, "count": count}
    refused = c.request("upload_open", body)["body"]
    assert (refused["code"], refused["field"]) == ("too_large", "body.count"), refused
    assert "budget" in refused["message"] and refused["hint"]
    too_many = {**body, "width": 8, "height": 8, "count": int(rows["max_frames"]) + 1}
    refused = c.request("upload_open", too_many)["body"]
    assert (refused["code"], refused["field"]) == ("bad_range", "body.count")
    # A message past max_upload_message_bytes is too large even for an upload.
    big = b"\0" * int(rows["max_upload_message_bytes"] - 1000)
    rid = c.send("upload_frames", {"upload": body["upload"], "parts": [part(0, big), part(1, big)]},
                 blobs=(big, big))
    assert c.reply(rid)[0]["body"]["code"] == "too_large"


def test_bad_checksum_short_frame_and_bad_offset_are_refused_and_nothing_is_kept(raw, clip_frames):
    c = raw()
    upload = new_id()
    c.request("upload_open", describe(upload, clip_frames))
    good, data = clip_frames[0].tobytes(), clip_frames[1].tobytes()
    cases = [
        ([part(FIRST, good), part(FIRST + 1, data, crc=zlib.crc32(data) ^ 1)], (good, data), "bad_checksum",
         "body.parts[1].crc32"),
        ([part(FIRST, good), part(FIRST + 1, data[:-3])], (good, data[:-3]), "short_frame", "body.parts[1].end"),
        ([part(FIRST + 1, data[100:], offset=100)], (data[100:],), "bad_part", "body.parts[0].offset"),
        ([part(FIRST + 9, good)], (good,), "bad_part", "body.parts[0].frame"),
    ]
    replies = doc_section("Replies (server -> client, `rid` copied from the request)")
    documented_codes = names_in(replies[replies.index("Error codes:"):])
    for parts, blobs, code, field in cases:
        rid = c.send("upload_frames", {"upload": upload, "parts": parts}, blobs=blobs)
        body = c.reply(rid)[0]["body"]
        assert (body["code"], body["field"]) == (code, field), body
        assert body["message"] and body["hint"] and code in documented_codes
    # A whole message is refused: the good first part of each was not kept either.
    assert c.request("upload_open", describe(upload, clip_frames))["body"]["have"] == []
    # A submit of an incomplete upload is refused by name.
    refused = c.request("submit", {"spec": {"input": "", "upload": upload, "params": PARAMS}})["body"]
    assert (refused["code"], refused["field"]) == ("upload_incomplete", "body.spec.upload")
    refused = c.request("upload_frames", {"upload": new_id(), "parts": [part(FIRST, good)]}, blobs=(good,))["body"]
    assert refused["code"] == "unknown_upload"


def test_16_bit_rgba_and_float_input_edit_like_8_bit_and_alpha_comes_back(raw, server, clip_frames, uploaded_job):
    c = raw()
    h, w, _ = clip_frames[0].shape
    ramp = (np.arange(h * w, dtype=np.uint32).reshape(h, w, 1) * 997 % 65536).astype(np.uint16)
    deep = [np.concatenate([f.astype(np.uint16) * 257, ramp], axis=2) for f in clip_frames]
    floats = [f.astype(np.float32) / 255.0 for f in clip_frames]
    for frames, name in ((deep, "rgba16"), (floats, "float")):
        upload = new_id()
        upload_all(c, upload, frames)
        _, events = run(c, upload_spec(server, upload, f"uploaded_{name}"))
        got = frames_of(events)
        assert sorted(got) == sorted(uploaded_job["frames"])
        for n, image in got.items():
            channels = 4 if name == "rgba16" else 3
            assert image.shape == (h, w, channels)
            # The model read the same 8-bit pictures: the same edit as the 8-bit upload.
            assert np.array_equal(image[..., :3], uploaded_job["frames"][n]), (name, n)
            if channels == 4:  # alpha passed through, quantised to 8 bits
                expected = ((ramp[..., 0].astype(np.uint32) + 128) // 257).astype(np.uint8)
                assert np.array_equal(image[..., 3], expected)


def test_several_prompts_on_an_rgba_upload_each_equal_their_prompt_alone_with_the_alpha_back(raw, server, clip_frames,
                                                                                             uploaded_job):
    c = raw()
    h, w, _ = clip_frames[0].shape
    alpha = (np.arange(h * w, dtype=np.uint32).reshape(h, w, 1) % 251).astype(np.uint8)
    upload = new_id()
    upload_all(c, upload, [np.concatenate([f, alpha], axis=2) for f in clip_frames])
    other = "an oil painting"
    _, events = run(c, upload_spec(server, upload, "uploaded_two_prompts",
                                   params={**PARAMS, "variants": [other]}))
    by_prompt = [{h_["body"]["frame"]: np.frombuffer(b[0], np.uint8).reshape(h_["body"]["shape"])
                  for h_, b in events if h_["type"] == "frame" and h_["body"].get("variant", 0) == v} for v in (0, 1)]
    _, alone = run(c, upload_spec(server, upload, "uploaded_second_prompt_alone",
                                  params={**PARAMS, "prompt": other}))
    for got, expected in zip(by_prompt, (uploaded_job["frames"], frames_of(alone)), strict=True):
        assert sorted(got) == sorted(expected)
        for n, image in got.items():
            assert image.shape == (h, w, 4)
            assert np.array_equal(image[..., :3], expected[n][..., :3]), n  # the prompt's own edit, bit for bit
            assert np.array_equal(image[..., 3], alpha[..., 0])  # every prompt's frames get the alpha back


def test_an_identical_request_is_answered_from_the_finished_job_and_nothing_runs(raw, server, clip_frames,
                                                                                 uploaded_job):
    c = raw()
    before = c.request("list", {"limit": 1000})["body"]["jobs"]
    # The same pixels under a new id (a reopened project, another instance): the same result.
    upload = new_id()
    upload_all(c, upload, clip_frames)
    accepted = c.request("submit", {"spec": upload_spec(server, upload, "uploaded_rgb8")})
    job = uploaded_job["accepted"]["job"]
    assert accepted["type"] == "accepted" and accepted["job"] == job and accepted["seq"] == 1
    assert accepted["body"]["state"] == "done"
    after = c.request("list", {"limit": 1000})["body"]["jobs"]
    assert len(after) == len(before)  # no job was made
    info = c.request("status", job=job)["body"]["info"]
    assert info["attempts"] == 1 and info["state"] == "done"  # and the old one did not run again
    rid = c.send("subscribe", {"from_seq": 1}, job=job)
    replay = list(c.events(rid))[1:]
    assert frames_of(replay).keys() == uploaded_job["frames"].keys()
    assert all(np.array_equal(frames_of(replay)[n], uploaded_job["frames"][n]) for n in uploaded_job["frames"])
    # Another parameter is another result: a new job.
    other = c.request("submit", {"spec": {**upload_spec(server, upload, "uploaded_rgb8_seed1"),
                                          "params": {**PARAMS, "seed": 1}}})
    assert other["type"] == "accepted" and other["job"] != job


def test_the_python_client_uploads_resumes_and_submits(server, clip_frames, uploaded_job):
    calls: list[int] = []

    def frame(n: int) -> np.ndarray:
        calls.append(n)
        return clip_frames[n - FIRST]

    upload = new_id()
    shape: dict[str, Any] = dict(width=176, height=144, channels=3, dtype="uint8", frame_rate="30000/1001", first=FIRST, count=4)
    with Client(server.endpoint, timeout=30) as client:
        client.upload_open(upload, **shape)
        client.upload_frames(upload, frame, [FIRST + 1])
    with Client(server.endpoint, timeout=30) as client:  # a new connection resumes
        calls.clear()
        state = client.upload(upload, frame, **shape)
        assert state.complete and calls == [FIRST, FIRST + 2, FIRST + 3]
        with pytest.raises(ServerError) as exc:
            client.submit(p.JobSpec(input="", upload=upload, params=PARAMS, frames=f"{FIRST}:{FIRST + 9}"))
        assert exc.value.code == "bad_range"
        accepted = client.submit(p.JobSpec(input="", upload=upload, params=PARAMS, frames=f"{FIRST + 1}:{FIRST + 2}",
                                           proxy_size=64, output=str(server.out / "client_upload.mp4")))
        done = client.wait(accepted.job)
        assert done.kind == "done"
        frames = {e.body.frame: e for e in client.fetch_frames(accepted.job) if isinstance(e.body, p.Frame)}
        assert sorted(frames) == [FIRST + 1, FIRST + 2]


def test_upload_delete_and_the_documented_section(raw, clip_frames):
    c = raw()
    upload = new_id()
    upload_all(c, upload, clip_frames)
    ok = c.request("upload_delete", {"upload": upload})
    assert ok["type"] == "ok"
    assert c.request("upload_open", describe(upload, clip_frames))["body"]["have"] == []
    text = doc_section(SECTION)
    assert "upload_open" in text and "upload_frames" in text


def test_an_upload_in_use_is_kept_and_a_job_whose_upload_vanished_fails_by_name(raw, server, clip_frames):
    c = raw()
    upload = new_id()
    upload_all(c, upload, clip_frames)
    assert c.request("queue", {"action": "pause"})["body"]["paused"]
    try:
        accepted = c.request("submit", {"spec": upload_spec(server, upload, "vanishing")})
        refused = c.request("upload_delete", {"upload": upload})["body"]
        assert (refused["code"], refused["field"]) == ("upload_in_use", "body.upload") and refused["hint"]
        folder = server.data / "uploads" / upload  # where the protocol says uploads live
        assert len(list((folder / "frames").glob("*.raw"))) == 4
        shutil.rmtree(folder)  # gone behind the server's back (a disk cleaned by hand)
    finally:
        c.request("queue", {"action": "resume"})
    rid = c.send("subscribe", {"from_seq": 1}, job=accepted["job"])
    last = list(c.events(rid))[-1][0]
    assert last["type"] == "failed" and last["body"]["code"] == "upload_gone" and last["body"]["hint"]
