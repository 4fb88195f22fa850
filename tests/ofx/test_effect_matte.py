"""The effect's Matte input, in the test host against a real `tokenflow serve` (tiny model):
connected, Render edit uploads the mask's frames beside the clip's and the server edits
inside it only (outside, the source's pixels exactly); Invert matte edits the outside;
an RGBA mask gives its alpha; disconnected, the whole frame is edited as before."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bridge.wire import protocol as p
from bridge.wire.client import Client
from tests.e2e.conftest import ServeProcess
from tests.ofx.host import OK, Host
from tests.ofx.test_effect_e2e import PARAMS, DefaultOutputServe, client_jobs, edit

GENERAL = "OfxImageEffectContextGeneral"
MARGIN = 8  # columns either side of the matte's edge left out: the 2-pixel feather's reach, resized


@pytest.fixture(scope="module")
def serve(tmp_path_factory, tiny_model_dir):
    server = DefaultOutputServe(tmp_path_factory.mktemp("ofx-matte-serve"), tiny_model_dir).start()
    yield server
    server.stop()


def left_half(clip: list[np.ndarray], channels: int = 1) -> list[np.ndarray]:
    """A mask per frame, opaque over the left half: Alpha (1 channel) or RGBA with noise in RGB."""
    h, w = clip[0].shape[:2]
    alpha = np.zeros((h, w, 1), np.uint8)
    alpha[:, : w // 2] = 255
    if channels == 1:
        return [alpha] * len(clip)
    noise = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return [np.concatenate([noise, alpha], axis=2)] * len(clip)


def matte_edit(host: Host, serve: ServeProcess, prompt: str, **values: Any):
    inst = host.create_instance(context=GENERAL, channels=3)
    for name, value in {"server": serve.endpoint, "prompt": prompt, "steps": PARAMS["steps"],
                        "workingSize": PARAMS["short_side"], "kfInterval": PARAMS["kf_interval"],
                        "seed": PARAMS["seed"], "matteFeather": 2.0, **values}.items():
        inst.set(name, value)
    inst.press("renderEdit")
    return inst


def delivered(host: Host, inst, count: int) -> dict[int, np.ndarray]:
    out = {}
    for t in range(count):
        status, frame = inst.render(t, 1.0)
        assert status == OK, host.messages
        out[t] = frame
    return out


def server_frames(serve: ServeProcess, prompt: str) -> dict[int, np.ndarray]:
    with Client(serve.endpoint, timeout=30) as client:
        jobs = [j for j in client.list_jobs() if j.prompt == prompt]
        assert len(jobs) == 1
        assert client.wait(jobs[0].id).kind.value == "done"
        return {e.body.frame: e.image() for e in client.fetch_frames(jobs[0].id) if isinstance(e.body, p.Frame)}


@pytest.fixture(scope="module")
def matted(ofx_bundle, clip, serve):
    """The clip edited inside an Alpha mask over its left half."""
    host = Host(ofx_bundle, lambda t: clip[t], 0, len(clip) - 1, matte=lambda t: left_half(clip)[t])
    host.load_and_describe()
    inst = matte_edit(host, serve, "inside the matte")
    frames = delivered(host, inst, len(clip))
    inst.destroy()
    return frames


def test_a_connected_matte_keeps_the_source_outside_it_exactly(clip, serve, matted):
    edge = clip[0].shape[1] // 2
    for t, out in matted.items():
        assert np.array_equal(out[:, edge + MARGIN:], clip[t][:, edge + MARGIN:]), t  # outside: the source
        assert not np.array_equal(out[:, : edge - MARGIN], clip[t][:, : edge - MARGIN]), t  # inside: edited
    # What the effect shows is the server's result, and the server got the mask as an upload of its own.
    frames = server_frames(serve, "inside the matte")
    assert all(np.array_equal(out, frames[t]) for t, out in matted.items())
    assert [f.name for f in (serve.data / "uploads").iterdir() if f.name.startswith("ofx-matte-")]


def test_invert_matte_edits_the_outside_and_an_rgba_mask_gives_its_alpha(ofx_bundle, clip, serve, matted):
    edge = clip[0].shape[1] // 2
    host = Host(ofx_bundle, lambda t: clip[t], 0, len(clip) - 1, matte=lambda t: left_half(clip)[t])
    host.load_and_describe()
    inst = matte_edit(host, serve, "inside the matte", matteInvert=1)
    for t, out in delivered(host, inst, len(clip)).items():
        assert np.array_equal(out[:, : edge - MARGIN], clip[t][:, : edge - MARGIN]), t
        assert not np.array_equal(out[:, edge + MARGIN:], clip[t][:, edge + MARGIN:]), t
    inst.destroy()
    rgba = Host(ofx_bundle, lambda t: clip[t], 0, len(clip) - 1, matte=lambda t: left_half(clip, 4)[t])
    rgba.load_and_describe()
    inst = matte_edit(rgba, serve, "inside the matte")
    for t, out in delivered(rgba, inst, len(clip)).items():
        assert np.array_equal(out, matted[t]), t  # the same matte: the same frames
    inst.destroy()


def test_a_disconnected_matte_edits_the_whole_frame_as_before(ofx_bundle, clip, serve):
    host = Host(ofx_bundle, lambda t: clip[t], 0, len(clip) - 1)
    host.load_and_describe()
    filtered = edit(host, serve, "no matte here", channels=3)
    before = delivered(host, filtered, len(clip))
    jobs = len(client_jobs(serve))
    general = matte_edit(host, serve, "no matte here", matteFeather=5.0, matteInvert=1)  # no matte: not sent
    after = delivered(host, general, len(clip))
    assert len(client_jobs(serve)) == jobs  # the same request as the filter's: answered from its job
    edge = clip[0].shape[1] // 2
    for t in before:
        assert np.array_equal(after[t], before[t]), t  # the filter context's edit, whole
        assert not np.array_equal(after[t][:, edge + MARGIN:], clip[t][:, edge + MARGIN:]), t
    filtered.destroy()
    general.destroy()
