"""The real bundle in the test host against a real `tokenflow serve` (tiny model): Render
edit uploads the clip's frames and submits; full-resolution renders equal the server's own
result for the same frames (`tokenflow submit` of the same pixels); render scale 0.25;
abort; two instances with different prompts; 16-bit and float sources; the cache."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bridge.wire import protocol as p
from tests.e2e.conftest import ServeProcess
from tests.ofx.conftest import clip_frames
from tests.ofx.host import OK, Host

pytestmark = pytest.mark.skipif(not hasattr(p, "UploadOpen"),
                                reason="the server side of uploaded frames (branch ofx-wire) is not in this tree")

PARAMS = {"steps": 2, "short_side": 64, "kf_interval": 4, "seed": 7}
SERVER_PYTHONPATH = os.environ.get("TOKENFLOW_OFX_SERVER_PYTHONPATH")  # run the server from another tree


class DefaultOutputServe(ServeProcess):
    """A server writing outputs where a user's does by default (its data folder): the effect names no output."""

    def command(self) -> list[str]:
        argv = super().command()
        i = argv.index("--allow-output")
        return argv[:i] + argv[i + 2:]


@pytest.fixture(scope="module")
def serve(tmp_path_factory, tiny_model_dir):
    import tests.e2e.conftest as e2e

    if SERVER_PYTHONPATH:  # the server from another checkout (a branch whose server is ahead of this tree)
        e2e.REPO = Path(SERVER_PYTHONPATH)
    server = DefaultOutputServe(tmp_path_factory.mktemp("ofx-serve"), tiny_model_dir).start()
    yield server
    server.stop()


def edit(host: Host, serve: ServeProcess, prompt: str, depth: Any = np.uint8, channels: int = 4,
         steps: int = PARAMS["steps"]):
    inst = host.create_instance(depth=depth, channels=channels)
    inst.set("server", serve.endpoint)
    inst.set("prompt", prompt)
    inst.set("steps", steps)
    inst.set("workingSize", PARAMS["short_side"])
    inst.set("kfInterval", PARAMS["kf_interval"])
    inst.set("seed", PARAMS["seed"])
    inst.press("renderEdit")
    return inst


def test_render_edit_gives_the_servers_frames_at_full_resolution(ofx_bundle, clip, serve):
    host = Host(ofx_bundle, lambda t: clip[t], 0, len(clip) - 1, fps=30000 / 1001)
    host.load_and_describe()
    inst = edit(host, serve, "a watercolor painting", channels=3)
    early, _ = inst.render(0, 0.25, interactive=True)  # the viewer while it runs: source + state, at once
    assert early == OK
    got = {}
    assert inst.sequence(begin=True) == OK  # a delivery: the host's progress bar follows the edit
    for t in range(len(clip)):
        status, out = inst.render(t, 1.0)  # final render: waits for each full-resolution frame
        assert status == OK, host.messages
        got[t] = out
    assert inst.sequence(begin=False) == OK
    assert host.progress and all(0.0 <= v <= 1.0 for v in host.progress)
    # The server's own result for these pixels, fetched by the Python client (what
    # `tokenflow submit` and the panel read): the effect shows exactly those frames.
    from bridge.wire.client import Client

    with Client(serve.endpoint, timeout=30) as client:
        jobs = [j for j in client.list_jobs() if j.prompt == "a watercolor painting"]
        assert len(jobs) == 1
        assert client.wait(jobs[0].id).kind.value == "done"  # the last frame can arrive just before `done`
        frames = {e.body.frame: e.image() for e in client.fetch_frames(jobs[0].id)
                  if isinstance(e.body, p.Frame)}
    for t, out in got.items():
        assert np.array_equal(out[..., :3], frames[t][..., :3]), t
        assert not np.array_equal(out[..., :3], clip[t])
    # Reduced render scale: the finished frame, sampled down.
    status, small = inst.render(3, 0.25, interactive=True)
    assert status == OK and small.shape[:2] == clip[3][::4, ::4].shape[:2]
    # Each output pixel samples the full-resolution pixel under its centre (OFX rows count from the bottom).
    h, w = frames[3].shape[:2]
    rows = [h - 1 - min(h - 1, int((y + 0.5) * 4)) for y in range(small.shape[0])][::-1]
    cols = [min(w - 1, int((x + 0.5) * 4)) for x in range(small.shape[1])]
    assert np.array_equal(small[..., :3], frames[3][np.ix_(rows, cols)][..., :3])
    # Same parameters and frames again: answered from the finished job, nothing runs.
    before = len(client_jobs(serve))
    again = edit(host, serve, "a watercolor painting", channels=3)
    status, out = again.render(2, 1.0)
    assert status == OK and np.array_equal(out, got[2])
    assert len(client_jobs(serve)) == before
    inst.destroy()
    again.destroy()


def client_jobs(serve: ServeProcess) -> list:
    from bridge.wire.client import Client

    with Client(serve.endpoint, timeout=30) as client:
        return client.list_jobs()


def test_abort_ends_a_waiting_final_render_within_a_second(ofx_bundle, clip, serve):
    host = Host(ofx_bundle, lambda t: clip[t], 0, len(clip) - 1)
    host.load_and_describe()
    inst = edit(host, serve, "an abort test", channels=3)
    inst.set("steps", 40)  # long enough to still be running when the host aborts
    inst.press("renderEdit")
    timer = threading.Timer(0.5, inst.abort)
    timer.start()
    started = time.monotonic()
    status, _out = inst.render(5, 1.0)
    assert status == OK and time.monotonic() - started < 1.5
    inst.abort(False)
    inst.press("cancel")
    inst.destroy()


def test_two_instances_with_different_prompts_and_deep_sources(ofx_bundle, clip, serve):
    host = Host(ofx_bundle, lambda t: clip[t], 0, len(clip) - 1)
    host.load_and_describe()
    a = edit(host, serve, "ink drawing", depth=np.uint16)
    b = edit(host, serve, "oil painting", depth=np.float32)
    sa, oa = a.render(1, 1.0)
    sb, ob = b.render(1, 1.0)
    assert sa == OK and sb == OK, host.messages
    assert oa.dtype == np.uint16 and ob.dtype == np.float32
    assert not np.array_equal(oa[..., :3] // 257, np.round(ob[..., :3] * 255).astype(np.uint16))
    # Alpha is the source's, untouched.
    src_alpha = host.source_image(1, 1.0, np.dtype(np.uint16), 4)[::-1][..., 3]
    assert np.array_equal(oa[..., 3], src_alpha)
    a.destroy()
    b.destroy()



def test_a_parameter_change_while_rendering_marks_the_result_stale(ofx_bundle, clip, serve):
    host = Host(ofx_bundle, lambda t: clip[t], 0, len(clip) - 1)
    host.load_and_describe()
    inst = edit(host, serve, "a pencil sketch", channels=3)
    status, edited = inst.render(2, 1.0)
    assert status == OK
    inst.set("prompt", "a charcoal sketch")  # changed after the edit: the result no longer matches
    assert inst.param("status").startswith("Stale")
    status, shown = inst.render(2, 1.0, interactive=True)  # the viewer: the old result, a grey bar on it
    assert status == OK and np.array_equal(shown[:-4], edited[:-4]) and not np.array_equal(shown[-1], edited[-1])
    status, _ = inst.render(2, 1.0)  # a delivery refuses rather than render an edit of other words
    assert status != OK
    assert any("parameters changed" in m.text for m in host.messages)
    inst.press("renderEdit")  # the new words: a new edit, its own frames
    status, again = inst.render(2, 1.0)
    assert status == OK and not np.array_equal(again, edited)
    assert not inst.param("status").startswith("Stale")
    inst.destroy()


def test_cancel_ends_the_edit_and_a_delivery_says_so(ofx_bundle, clip, serve):
    host = Host(ofx_bundle, lambda t: clip[t], 0, len(clip) - 1)
    host.load_and_describe()
    inst = edit(host, serve, "cancel me", channels=3)
    inst.set("steps", 60)
    inst.press("renderEdit")
    inst.press("cancel")
    deadline = time.monotonic() + 30
    status = OK
    while time.monotonic() < deadline:
        status, _ = inst.render(4, 1.0)  # returns when the edit has ended (cancelled)
        if status != OK:
            break
    assert status != OK and any("cancelled" in m.text for m in host.messages)
    inst.set("seed", PARAMS["seed"])  # refreshes the status line
    assert "Cancelled" in inst.param("status")
    inst.destroy()


def test_a_server_restarted_mid_job_is_followed_to_the_end(ofx_bundle, clip, serve):
    host = Host(ofx_bundle, lambda t: clip[t], 0, len(clip) - 1)
    host.load_and_describe()
    inst = edit(host, serve, "survives a restart", channels=3)
    inst.set("steps", 80)  # the tiny model is fast: enough steps to be mid-edit when killed
    inst.press("renderEdit")
    from bridge.wire.client import Client

    deadline = time.monotonic() + 60  # kill it as soon as the job exists
    with Client(serve.endpoint, timeout=30) as client:
        while time.monotonic() < deadline:
            if any(j.prompt == "survives a restart" for j in client.list_jobs()):
                break  # submitted: killed before any frame can be ready (frames come after the whole edit)
            time.sleep(0.02)
    serve.kill9()
    _, shown = inst.render(7, 1.0, interactive=True)
    assert np.array_equal(shown[:-4], clip[7][:-4])  # no result for frame 7 yet: the source, with the bar
    time.sleep(6)  # past the heartbeat liveness window (5 s): the effect notices the silence
    serve.start()
    status, out = inst.render(7, 1.0)
    assert status == OK, host.messages
    assert not np.array_equal(out, clip[7])
    inst.destroy()


def test_the_viewer_at_reduced_scale_shows_the_servers_proxies_before_the_job_is_done(ofx_bundle, serve):
    from bridge.wire.client import Client

    # 144x128 frames edited at 64: the previews (72x64) are smaller than the frame and are stretched
    clip = clip_frames(8, short_side=128)
    host = Host(ofx_bundle, lambda t: clip[t], 0, len(clip) - 1)
    host.load_and_describe()
    # 40 steps: keyframe previews every 5 steps while it edits, a window to see them in
    inst = edit(host, serve, "proxies in the viewer", channels=3, steps=40)
    source_small = clip[0][::4, ::4]
    bar = 3  # the progress bar's rows at the bottom (max(3, height / 40))
    seen, state, jobs = None, None, []
    deadline = time.monotonic() + 120
    with Client(serve.endpoint, timeout=30) as client:
        while seen is None and time.monotonic() < deadline:
            status, small = inst.render(0, 0.25, interactive=True)  # frame 0 is a keyframe
            assert status == OK and small.shape[:2] == source_small.shape[:2]
            if not np.array_equal(small[:-bar], source_small[:-bar]):
                jobs = [j for j in client.list_jobs() if j.prompt == "proxies in the viewer"]
                state = client.status(jobs[0].id).state if jobs else None
                seen = small
            else:
                time.sleep(0.02)
        assert seen is not None, "no proxy reached the viewer at scale 0.25"
        assert jobs and state in ("queued", "running"), state  # shown while the job still runs
        status, full_mid = inst.render(0, 1.0, interactive=True)  # the same moment at scale 1.0
        assert status == OK
        # Deliveries wait for the full-resolution frames: exactly the server's.
        got = {}
        for t in range(len(clip)):
            status, out = inst.render(t, 1.0)
            assert status == OK, host.messages
            got[t] = out
        assert client.wait(jobs[0].id).kind.value == "done"
        frames = {e.body.frame: e.image() for e in client.fetch_frames(jobs[0].id) if isinstance(e.body, p.Frame)}
        # Frame 0's keyframe previews: the proxies of a frame still being edited (a finished
        # frame's proxy comes just before its full frame, and at these sizes equals it).
        proxies = [e.image() for e in client.events(jobs[0].id, frames=False)
                   if isinstance(e.body, p.Proxy) and e.body.frame == 0 and e.body.kind == "preview"]
    for t, out in got.items():
        assert np.array_equal(out[..., :3], frames[t][..., :3]), t
    # What the viewer showed is one of frame 0's raw previews stretched over the frame at 0.25,
    # nearest pixel, right way up.
    assert proxies and {px.shape[2] for px in proxies} == {3}
    h, w = clip[0].shape[:2]
    assert all(px.shape[:2] != (h, w) for px in proxies)  # the stretch is exercised
    shown = []
    for px in proxies:
        ph, pw = px.shape[:2]
        rows = [ph - 1 - min(ph - 1, int((int((y + 0.5) * 4) + 0.5) * ph / h)) for y in range(seen.shape[0])][::-1]
        cols = [min(pw - 1, int((int((x + 0.5) * 4) + 0.5) * pw / w)) for x in range(seen.shape[1])]
        shown.append(px[np.ix_(rows, cols)])
    assert any(np.array_equal(seen[:-bar], s[:-bar]) for s in shown)
    # At scale 1.0 the viewer kept the source (never a proxy) until the full-resolution frame was there.
    assert np.array_equal(full_mid[:-4], clip[0][:-4]) or np.array_equal(full_mid[..., :3], frames[0][..., :3])
    # Once the frame is there the reduced-scale viewer shows it, not the proxy.
    status, small = inst.render(0, 0.25, interactive=True)
    h, w = frames[0].shape[:2]
    rows = [h - 1 - min(h - 1, int((y + 0.5) * 4)) for y in range(small.shape[0])][::-1]
    cols = [min(w - 1, int((x + 0.5) * 4)) for x in range(small.shape[1])]
    assert status == OK and np.array_equal(small[..., :3], frames[0][np.ix_(rows, cols)][..., :3])
    inst.destroy()
