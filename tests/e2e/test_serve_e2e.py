"""End to end: a real `tokenflow serve` process, the real engine with the tiny model, on CPU."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from bridge import media
from bridge.wire.client import Client, EventKind
from tests.e2e.conftest import REPO, ServeProcess
from tests.server.fuzz import fuzz
from tests.server.test_server import check_order


def connect(endpoint: str, **kw) -> Client:
    c = Client(endpoint, timeout=kw.pop("timeout", 20.0), **kw)
    c.connect()
    return c


def test_job_end_to_end(serve, shipped_clip):
    c = connect(serve.endpoint)
    assert c.welcome.models == [str(serve.model)] and c.welcome.engine_state in ("loading", "ready")
    accepted = c.submit(serve.spec(shipped_clip, frames="20:27"))
    events = [accepted, *c.events(accepted.job, 2)]
    check_order(events, 20, 27)
    for e in events:
        if e.kind is EventKind.FRAME:
            assert e.image().shape == (144, 176, 3)  # source size, not the 64 px working size
    done = events[-1].body
    assert done.stats["frames"] == 8
    assert media.probe(done.outputs[0]).frame_count == 8
    c.close()


def test_two_clients_at_once_and_cancel_mid_run(serve, shipped_clip):
    a, b = connect(serve.endpoint), connect(serve.endpoint)
    long_job = a.submit(serve.spec(shipped_clip, frames="0:3", steps=30, prompt="long")).job
    short_job = b.submit(serve.spec(shipped_clip, frames="30:33", steps=2, prompt="short")).job
    results = {}

    def watch_short():
        results["short"] = list(b.events(short_job, 1, frames=False))

    t = threading.Thread(target=watch_short)
    t.start()
    started = {}  # denoising step index -> when its first progress event came
    for e in a.events(long_job, 2, frames=False):
        if e.kind is EventKind.PROGRESS and e.body.stage == "edit":
            started.setdefault(e.body.step, time.monotonic())
            if len(started) == 3:
                break
    times = sorted(started.values())
    step_s = (times[-1] - times[0]) / 2
    t0 = time.monotonic()
    a.cancel(long_job)
    end = a.wait(long_job)
    took = time.monotonic() - t0
    assert end.kind is EventKind.CANCELLED
    assert took < 2 * step_s + 1.0, (took, step_s)  # within about one denoising step
    t.join(120)
    check_order(results["short"], 30, 33)  # queued behind the cancelled job, then ran
    a.close()
    b.close()


_CHILD = """
import sys
from bridge.wire.client import Client
from bridge.wire import protocol as p
c = Client(sys.argv[1], timeout=20)
c.connect()
spec = p.JobSpec(input=sys.argv[2], frames="40:43", output=sys.argv[3],
                 params={"prompt": "child", "steps": 4, "short_side": 64, "kf_interval": 4, "preview_every": 1})
job = c.submit(spec).job
print(job, flush=True)
for e in c.events(job, 2):
    print(e.seq, e.kind.value, flush=True)
"""


def test_client_killed_mid_job_then_another_reattaches(serve, shipped_clip):
    child = subprocess.Popen([sys.executable, "-c", _CHILD, serve.endpoint, str(shipped_clip),
                              str(serve.out / "child.mp4")], cwd=REPO, stdout=subprocess.PIPE, text=True)
    job = child.stdout.readline().strip()
    for _ in range(5):
        assert child.stdout.readline()
    child.kill()  # SIGKILL: no goodbye
    child.wait(10)
    c = connect(serve.endpoint)
    events = list(c.events(job, 1))
    check_order(events, 40, 43)
    assert (serve.out / "child.mp4").is_file()
    c.close()


def test_fuzz_then_a_normal_job(serve, shipped_clip):
    replies = fuzz(serve.endpoint, 3000, seed=11, oversize=4 << 20)
    assert replies > 2500
    c = connect(serve.endpoint)
    assert c.wait(c.submit(serve.spec(shipped_clip, frames="50:53", steps=2)).job).kind is EventKind.DONE
    c.close()


def test_kill9_mid_job_then_restart_finishes_it(tmp_path, tiny_model_dir, shipped_clip):
    server = ServeProcess(tmp_path, tiny_model_dir).start()
    try:
        c = connect(server.endpoint, reconnect_timeout=120)
        job = c.submit(server.spec(shipped_clip, frames="60:67", steps=10)).job
        events = []
        for e in c.events(job, 2, frames=True):
            events.append(e)
            if e.kind is EventKind.PROGRESS and e.body.stage == "edit" and e.body.step >= 1:
                break
        server.kill9()
        restarted = threading.Thread(target=server.start)
        restarted.start()
        # The same client carries on: it notices the silence, reconnects, re-subscribes.
        events += list(c.events(job, events[-1].seq + 1))
        restarted.join(120)
        kinds = [e.kind for e in events]
        assert kinds.count(EventKind.REQUEUED) == 1
        frames = [e.body.frame for e in events if e.kind is EventKind.FRAME]
        assert frames == list(range(60, 68))
        done = events[-1]
        assert done.kind is EventKind.DONE
        assert done.body.stats["inversion_cached"] is True  # the second attempt re-used the inversion
        assert c.status(job).attempts == 2
        assert media.probe(done.body.outputs[0]).frame_count == 8
        c.close()
    finally:
        server.stop()


def test_remote_bind_without_a_secret_is_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--bind", "tcp://0.0.0.0:0", "--model", "unused",
         "--data-dir", str(tmp_path / "data")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "Refusing to bind tcp://0.0.0.0:0 without keys" in result.stderr
    assert "--curve-dir" in result.stderr
