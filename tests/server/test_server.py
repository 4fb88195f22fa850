"""The server in-process with a fake engine: ordering, replay, cancel, failures, validation."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bridge import media
from bridge.wire import protocol as p
from bridge.wire.client import EventKind, ServerError
from server import app as server_app
from server.journal import BlobCache


def check_order(events, first: int, last: int) -> None:
    """The promised order: accepted first, previews before frames, each frame's proxy before
    the frame, every frame exactly once in order, one terminal event last."""
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(events) + 1))
    assert events[0].kind is EventKind.ACCEPTED
    assert events[-1].kind is EventKind.DONE
    assert sum(e.terminal for e in events) == 1
    frames = [e.body.frame for e in events if e.kind is EventKind.FRAME]
    assert frames == list(range(first, last + 1))
    proxies = {e.body.frame: e.seq for e in events if e.kind is EventKind.PROXY and e.body.kind == "frame"}
    assert sorted(proxies) == frames
    frame_seq = {e.body.frame: e.seq for e in events if e.kind is EventKind.FRAME}
    assert all(proxies[f] < frame_seq[f] for f in frames)
    previews = [e.seq for e in events if e.kind is EventKind.PROXY and e.body.kind == "preview"]
    assert previews and max(previews) < min(frame_seq.values())


def test_job_end_to_end(harness):
    c = harness.client()
    accepted = c.submit(harness.spec())
    assert accepted.kind is EventKind.ACCEPTED and accepted.seq == 1
    events = [accepted, *c.events(accepted.job, 2)]
    check_order(events, 10, 17)
    source = list(media.read_frames(harness.clip, 10, 17))
    for e in events:
        if e.kind is EventKind.FRAME:
            assert e.body.shape == [144, 176, 3]
            np.testing.assert_array_equal(e.image(), 255 - source[e.body.frame - 10])
        if e.kind is EventKind.PROXY and e.body.kind == "frame":
            img = e.image()
            assert min(img.shape[:2]) == 144  # the default proxy short side (160) never upscales
    done = events[-1].body
    assert done.frames == 8 and done.first_frame == 10
    info = media.probe(done.outputs[0])
    assert info.frame_count == 8 and (info.width, info.height) == (176, 144)
    assert c.outputs(accepted.job) == done.outputs
    assert [e.body.frame for e in c.fetch_frames(accepted.job, 12, 13)] == [12, 13]
    status = c.status(accepted.job)
    assert status.state == "done" and status.last_seq == events[-1].seq


def test_two_clients_at_once(harness):
    a, b = harness.client(), harness.client()
    ja = a.submit(harness.spec(prompt="a")).job
    jb = b.submit(harness.spec(prompt="b", frames="0:3")).job
    seen = {}

    def watch(client, job, key):
        seen[key] = [e for e in client.events(job, 1, frames=False)]

    # each client watches the other's job too, in turns on its own socket
    ta = threading.Thread(target=watch, args=(a, jb, "a-watches-b"))
    ta.start()
    watch(b, ja, "b-watches-a")
    ta.join(10)
    check_order(seen["b-watches-a"], 10, 17)
    check_order(seen["a-watches-b"], 0, 3)
    assert all(e.data is None for e in seen["a-watches-b"] if e.kind is EventKind.FRAME)  # frames=False


def test_cancel_running_job_within_a_step(harness):
    harness.engine.step_s = 0.1
    c = harness.client()
    job = c.submit(harness.spec(steps=200)).job
    queued = c.submit(harness.spec(prompt="next", frames="0:1")).job
    for e in c.events(job, 2, frames=False):
        if e.kind is EventKind.PROGRESS and e.body.stage == "edit":
            break
    t0 = time.monotonic()
    assert c.cancel(job).state == "running"
    end = c.wait(job)
    assert end.kind is EventKind.CANCELLED
    assert time.monotonic() - t0 < 0.5  # within a step or two of 0.1 s
    assert c.status(job).state == "cancelled"
    harness.engine.step_s = 0.01
    assert c.wait(queued).kind is EventKind.DONE  # the worker was freed
    assert not (harness.root / "out" / "x-10_17.mp4").exists()  # a cancelled job leaves no output


def test_cancel_queued_job_removes_it(harness):
    harness.engine.step_s = 0.05
    c = harness.client()
    first = c.submit(harness.spec(steps=40)).job
    second = c.submit(harness.spec(prompt="later")).job
    assert c.status(second).position == 0
    info = c.cancel(second)
    assert info.state == "cancelled" and info.position is None
    assert [e.kind for e in c.events(second)] == [EventKind.ACCEPTED, EventKind.CANCELLED]
    c.cancel(first)
    assert c.wait(first).kind is EventKind.CANCELLED


def test_reconnecting_client_gets_everything(harness):
    harness.engine.step_s = 0.05
    a = harness.client()
    job = a.submit(harness.spec(steps=10)).job
    got = []
    for e in a.events(job):
        got.append(e)
        if len(got) == 6:
            break
    a.close()  # as if the client died: the job goes on
    b = harness.client()
    got += list(b.events(job, got[-1].seq + 1))
    check_order(got, 10, 17)


def test_server_forgetting_a_client_is_survived(harness):
    harness.engine.step_s = 0.05
    c = harness.client()
    job = c.submit(harness.spec(steps=20)).job
    got = []
    for e in c.events(job, frames=False):
        got.append(e)
        if len(got) == 5:
            harness.server.front.peers.clear()  # as after a long silence
    check_order(got, 10, 17)


def test_slow_client_loses_nothing(harness, monkeypatch):
    harness.stop()
    monkeypatch.setattr(server_app, "SEND_QUEUE_MESSAGES", 2)
    harness.start()
    c = harness.client()
    job = c.submit(harness.spec(frames="0:23")).job
    c.wait(job)
    got = []
    for e in c.events(job):  # a finished job: the whole log at once, through a queue of 2
        got.append(e)
        time.sleep(0.002)
    check_order(got, 0, 23)


def test_out_of_memory_fails_the_job_and_the_server_goes_on(harness):
    c = harness.client()
    job = c.submit(harness.spec(prompt="trigger-oom")).job
    end = c.wait(job)
    assert end.kind is EventKind.FAILED
    assert end.body.code == "out_of_memory"
    assert "--size" in end.body.hint and "batch" in end.body.hint
    assert c.status(job).error["code"] == "out_of_memory"
    assert c.wait(c.submit(harness.spec(prompt="ok")).job).kind is EventKind.DONE


@pytest.mark.parametrize(
    "change, code, field",
    [
        (dict(input="/no/such/clip.mp4"), "not_found", "body.spec.input"),
        (dict(input="relative.mp4"), "bad_field", "body.spec.input"),
        (dict(frames="100:200"), "bad_range", "body.spec.frames"),
        (dict(frames="banana"), "bad_range", "body.spec.frames"),
        (dict(output="/etc/evil.mp4"), "output_not_allowed", "body.spec.output"),
        (dict(output="OUT/../../escape.mp4"), "output_not_allowed", "body.spec.output"),
        (dict(output="OUT/movie.avi"), "output_not_writable", "body.spec.output"),
        (dict(params={"stpes": 3}), "bad_params", "body.spec.params.stpes"),
        (dict(params={"steps": "many"}), "bad_params", "body.spec.params.steps"),
        (dict(params={"steps": 0}), "bad_params", "body.spec.params.steps"),  # named (docs/protocol.md)
        (dict(params={"loras": ["ink.safetensors:99"]}), "bad_params", "body.spec.params.loras"),  # a list parameter
        (dict(params={"loras": "ink.safetensors"}), "bad_params", "body.spec.params.loras"),
        (dict(model="sdxl"), "unknown_model", "body.spec.model"),
        (dict(params={"matte": "matte.mov"}), "bad_field", "body.spec.params.matte"),
        (dict(params={"matte": "/no/such/matte_%04d.png"}), "not_found", "body.spec.params.matte"),
        (dict(params={"matte": "alpha"}), "media_error", "body.spec.params.matte"),  # the clip has no alpha
    ],
)
def test_bad_submissions_are_named(harness, change, code, field):
    c = harness.client()
    kw = dict(change)
    if "output" in kw:
        kw["output"] = kw["output"].replace("OUT", str(harness.root / "out"))
    params = kw.pop("params", {})
    spec = harness.spec(params=params, **{k: v for k, v in kw.items() if k in ("frames", "output", "model")})
    if "input" in kw:
        spec = p.JobSpec(**{**spec.__dict__, "input": kw["input"]})
    with pytest.raises(ServerError) as err:
        c.submit(spec)
    assert err.value.code == code and err.value.field == field
    assert err.value.message
    assert c.list_jobs() == []  # nothing half-accepted


def test_requests_about_jobs(harness):
    c = harness.client()
    with pytest.raises(ServerError) as err:
        c.status("nope")
    assert err.value.code == "unknown_job"
    harness.engine.step_s = 0.05
    running = c.submit(harness.spec(steps=40)).job
    token_spec = harness.spec(prompt="b", client_token="tok-1")
    b = c.submit(token_spec)
    assert c.submit(token_spec).job == b.job  # a retried submit does not make a second job
    d = c.submit(harness.spec(prompt="d")).job
    assert c.reorder(d, position=0).position == 0
    assert c.status(b.job).position == 1
    assert c.reorder(b.job, priority=5).position == 0
    with pytest.raises(ServerError) as err:
        c.reorder(running, priority=1)
    assert err.value.code in ("not_queued",)
    assert {j.id for j in c.list_jobs(states=["queued"])} == {b.job, d}
    with pytest.raises(ServerError) as err:
        list(c.fetch_frames(running, 0, 3))
    assert err.value.code == "bad_range"
    for j in (running, b.job, d):
        c.cancel(j)


def test_restart_requeues_interrupted_job_without_repeating_frames(harness):
    c = harness.client()
    job = c.submit(harness.spec()).job
    c.wait(job)
    harness.rewind_to_running(job, before_frame=13)  # frames 10..12 announced, as after a kill -9 mid-decode
    harness.start()
    c = harness.client()
    events = list(c.events(job))
    kinds = [e.kind for e in events]
    assert EventKind.REQUEUED in kinds
    frames = [e.body.frame for e in events if e.kind is EventKind.FRAME]
    assert frames == list(range(10, 18))  # 10..12 from the first attempt, 13..17 from the second
    assert events[-1].kind is EventKind.DONE
    assert media.probe(events[-1].body.outputs[0]).frame_count == 8
    assert c.status(job).attempts == 2


def test_graceful_stop_requeues_running_job(harness):
    harness.engine.step_s = 0.05
    c = harness.client()
    job = c.submit(harness.spec(steps=100)).job
    for e in c.events(job, frames=False):
        if e.kind is EventKind.PROGRESS and e.body.stage == "edit":
            break
    harness.stop()
    harness.engine.step_s = 0.005
    harness.start()
    c = harness.client()
    assert c.wait(job).kind is EventKind.DONE
    kinds = [e.kind for e in c.events(job, frames=False)]
    assert kinds.count(EventKind.REQUEUED) == 1


def test_model_that_fails_to_load_fails_jobs_with_a_hint(harness):
    from tokenflow.errors import ModelNotFound

    harness.stop()
    harness.server = server_app.Server(harness.config, engine_factory=lambda model: (_ for _ in ()).throw(
        ModelNotFound(f"No model at {model}.")))
    harness.endpoint = harness.server.start_in_thread()
    c = harness.client()
    assert c.welcome.engine_state.startswith(("loading", "failed"))
    end = c.wait(c.submit(harness.spec()).job)
    assert end.kind is EventKind.FAILED and end.body.code == "model_not_found"
    assert "--model" in end.body.hint
    assert c.hello().engine_state.startswith("failed: No model at fake")


def test_stored_frames_gone_under_a_stream_end_it_with_an_error_and_the_server_goes_on(harness):
    """A job's stored frames removed behind the server's back (a cleanup, a full disk) must
    cost the reading client a clear error, not the server its front thread."""
    c = harness.client()
    job = c.submit(harness.spec()).job
    assert c.wait(job).kind is EventKind.DONE
    stored = [f for f in (harness.root / "data" / "jobs" / job).rglob("*") if f.is_file()]
    assert stored, "the job stored nothing to replay"
    for f in stored:
        f.unlink()
    harness.server.journal.cache = BlobCache(max_bytes=0)  # nothing held in memory either
    with pytest.raises(ServerError) as refused:
        list(c.events(job))
    assert refused.value.code == "internal_error" and "deleted" in refused.value.message
    assert c.status(job).state == "done"  # the front still answers everyone
