"""docs/protocol.md, "Several prompts in one job", against a real `tokenflow serve` (raw ZeroMQ + msgpack).

A job with `params.variants` writes one output per prompt, named after it; each prompt's frames
equal the same prompt submitted alone (same seed) bit for bit; every (variant, frame) is
announced once; `done.variants` says which output is whose; an output that exists for any
prompt refuses the job before anything runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bridge.wire.naming import slug

PROMPTS = ["a watercolor painting", "snow at night, heavy", "oil paint"]
FRAMES = (20, 22)  # source frames, inclusive


def _spec(clip: Path, output: Path, prompts: list[str], **extra) -> dict:
    params = {"prompt": prompts[0], "steps": 2, "short_side": 64, "kf_interval": 2, "seed": 3,
              "preview_every": 1}
    if len(prompts) > 1:
        params["variants"] = prompts[1:]
    return {"input": str(clip), "params": params, "frames": f"{FRAMES[0]}:{FRAMES[1]}", "output": str(output),
            "proxy_size": 32, **extra}


def _run(raw, spec: dict) -> tuple[str, list[tuple[dict, list[bytes]]]]:
    c = raw()
    accepted = c.request("submit", {"spec": spec})
    assert accepted["type"] == "accepted", accepted
    rid = c.send("subscribe", {"from_seq": 1}, job=accepted["job"])
    events = list(c.events(rid, timeout=300))[1:]  # after `subscribed`
    assert events[-1][0]["type"] == "done", events[-1][0]
    return accepted["job"], events


def _pixels(header: dict, blobs: list[bytes]) -> np.ndarray:
    return np.frombuffer(blobs[0], np.uint8).reshape(header["body"]["shape"])


def _frames(events, variant: int) -> dict[int, np.ndarray]:
    return {h["body"]["frame"]: _pixels(h, b) for h, b in events if h["type"] == "frame"
            and h["body"]["variant"] == variant}


def _png_sequence(folder: Path) -> list[np.ndarray]:
    files = sorted(folder.glob("f_*.png"))
    assert len(files) == FRAMES[1] - FRAMES[0] + 1, files
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


@pytest.fixture(scope="module")
def together(server, shipped_clip, context):
    """The three prompts in one job, its output an image sequence (lossless, to compare)."""
    from tests.conformance.conftest import Raw

    clients: list[Raw] = []

    def raw() -> Raw:
        clients.append(Raw(server.endpoint, context))
        return clients[-1]

    try:
        job, events = _run(raw, _spec(shipped_clip, server.out / "together" / "f_%04d.png", PROMPTS))
        return {"job": job, "events": events}
    finally:
        for c in clients:
            c.close()


def test_each_prompt_gets_its_own_output_named_after_it_and_done_says_whose(server, together):
    done = together["events"][-1][0]["body"]
    folder = server.out / "together"
    expected = [folder / slug(prompt) / "f_%04d.png" for prompt in PROMPTS]
    assert [v["prompt"] for v in done["variants"]] == PROMPTS
    for variant, pattern in zip(done["variants"], expected):
        written = [pattern.parent / (pattern.name % n) for n in range(FRAMES[0], FRAMES[1] + 1)]
        assert variant["outputs"] == [str(path) for path in written]
        assert all(path.is_file() for path in written)
    # `outputs` stays the flat list of them all, and `files` covers every one of them.
    assert done["outputs"] == [path for v in done["variants"] for path in v["outputs"]]
    assert len(done["files"]) == len(done["outputs"]) == 3 * 3


def test_every_variant_frame_pair_is_announced_exactly_once(together):
    pairs = {"frame": [], "proxy": []}
    for header, _ in together["events"]:
        body = header["body"]
        if header["type"] == "frame" or (header["type"] == "proxy" and body["kind"] == "frame"):
            pairs[header["type"]].append((body["variant"], body["frame"]))
    wanted = [(v, f) for v in range(len(PROMPTS)) for f in range(FRAMES[0], FRAMES[1] + 1)]
    assert sorted(pairs["frame"]) == wanted and sorted(pairs["proxy"]) == wanted
    previews = [h["body"] for h, _ in together["events"] if h["type"] == "proxy" and h["body"]["kind"] == "preview"]
    # Keyframe previews: every prompt's edit, each marked with its prompt.
    assert {b["variant"] for b in previews} == set(range(len(PROMPTS)))


def test_each_prompt_equals_the_same_prompt_submitted_alone_bit_for_bit(raw, server, shipped_clip, together):
    for variant, prompt in enumerate(PROMPTS):
        alone_dir = server.out / f"alone{variant}"
        _, events = _run(raw, _spec(shipped_clip, alone_dir / "f_%04d.png", [prompt]))
        alone = _frames(events, 0)
        assert sorted(alone) == list(range(FRAMES[0], FRAMES[1] + 1))
        mixed = _frames(together["events"], variant)
        assert sorted(mixed) == sorted(alone)
        for frame in alone:  # the frame events' pixels
            assert np.array_equal(mixed[frame], alone[frame]), (prompt, frame)
        # and the written files, decoded
        on_disk = _png_sequence(server.out / "together" / slug(prompt))
        for a, b in zip(on_disk, _png_sequence(alone_dir)):
            assert np.array_equal(a, b), prompt


def test_fetch_frames_of_one_prompt_and_listing_knows_the_prompts(raw, together):
    c = raw()
    job = together["job"]
    info = c.request("status", job=job)["body"]["info"]
    assert info["prompt"] == PROMPTS[0] and info["variants"] == PROMPTS[1:]
    for variant in range(len(PROMPTS)):
        rid = c.send("fetch", {"what": "frames", "variant": variant}, job=job)
        fetched = {}
        while True:
            header, blobs = c.reply(rid)
            if header["type"] == "fetch_end":
                break
            assert header["type"] == "frame" and header["body"]["variant"] == variant, header
            fetched[header["body"]["frame"]] = _pixels(header, blobs)
        sent = _frames(together["events"], variant)
        assert sorted(fetched) == sorted(sent)
        assert all(np.array_equal(fetched[f], sent[f]) for f in sent)
    refused = c.request("fetch", {"what": "frames", "variant": len(PROMPTS)}, job=job)["body"]
    assert (refused["code"], refused["field"]) == ("bad_range", "body.variant"), refused


def test_an_existing_output_of_any_prompt_refuses_the_job_before_anything_runs(raw, server, shipped_clip):
    c = raw()
    output = server.out / "taken.mp4"
    third = output.with_name(f"taken_{slug(PROMPTS[2])}.mp4")
    third.write_bytes(b"the user's own file")
    before = len(c.request("list", {"limit": 1000})["body"]["jobs"])
    refused = c.request("submit", {"spec": _spec(shipped_clip, output, PROMPTS)})
    assert refused["type"] == "error", refused
    assert (refused["body"]["code"], refused["body"]["field"]) == ("output_exists", "body.spec.output")
    assert str(third) in refused["body"]["message"]
    assert len(c.request("list", {"limit": 1000})["body"]["jobs"]) == before  # nothing queued
    assert third.read_bytes() == b"the user's own file"
    assert not output.exists() and not output.with_name(f"taken_{slug(PROMPTS[0])}.mp4").exists()


def test_a_one_prompt_job_is_exactly_as_before(raw, server, shipped_clip):
    _, events = _run(raw, _spec(shipped_clip, server.out / "single.mp4", PROMPTS[:1]))
    done = events[-1][0]["body"]
    assert done["outputs"] == [str(server.out / "single.mp4")]
    assert done["variants"] == [{"prompt": PROMPTS[0], "outputs": done["outputs"]}]

