"""The render queue end to end: batches from JSON and OTIO through a real `tokenflow serve`
(tiny model, CPU), a server killed and restarted mid-batch, the summary, and a second client
that downloads the outputs over the protocol, also after its connection died mid-download."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import opentimelineio as otio
import pytest

from bridge import media
from bridge.wire import summary
from bridge.wire.client import Client, EventKind
from bridge.wire.download import download_job, partial_path
from tests.e2e.conftest import REPO, ServeProcess

PARAMS = {"steps": 2, "size": 64, "kf_interval": 4}


def cli(serve: ServeProcess, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENFLOW_SERVER": serve.endpoint}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    s = ServeProcess(tmp_path_factory.mktemp("queue"), tiny_model_dir).start()
    yield s
    s.stop()


def _otio(path: Path, clip: Path) -> Path:
    """Two clips of `clip`, whose media starts at timecode 00:10:00:00 (frame 18000 at 30 fps counting)."""
    rate = 30000 / 1001
    tl = otio.schema.Timeline(name="cut")
    track = otio.schema.Track(name="V1")
    tl.tracks.append(track)
    available = otio.opentime.TimeRange(otio.opentime.RationalTime(18000, rate), otio.opentime.RationalTime(120, rate))
    for name, first in (("shot_A", 30), ("shot_B", 90)):
        ref = otio.schema.ExternalReference(target_url=clip.as_uri(), available_range=available)
        track.append(otio.schema.Clip(name=name, media_reference=ref, source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(18000 + first, rate), otio.opentime.RationalTime(4, rate))))
    otio.adapters.write_to_file(tl, str(path))
    return path


def test_batches_survive_a_restart_and_end_with_summary_and_downloads(server, shipped_clip, tmp_path):
    renders = server.out / "renders"
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"defaults": PARAMS, "jobs": [
        {"input": str(shipped_clip), "range": "0:3", "prompt": "a watercolor painting", "seed": 1, "clip": "car"},
        {"input": str(shipped_clip), "range": "60:63", "prompt": "pencil sketch", "seed": 2, "clip": "car"},
        {"input": str(shipped_clip), "range": "100:103", "prompt": "oil on canvas", "seed": 3},
    ]}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"input": str(shipped_clip), "range": "0:3", "prompt": "x", **PARAMS},
                               {"input": str(shipped_clip), "range": "100:500", "prompt": "x", **PARAMS},
                               {"input": str(shipped_clip), "range": "9:3", "prompt": "x", **PARAMS}]))
    # A batch with impossible jobs queues nothing and says which jobs are wrong and why, all in
    # one run: a problem in the file itself (job 3) does not hide one found on the server (job 2).
    refused = cli(server, "queue", "add", str(bad), "-d", str(renders))
    assert refused.returncode == 2, refused.stderr
    assert "2 problem(s)" in refused.stderr
    assert "job 2:" in refused.stderr and "past the end of the clip" in refused.stderr
    assert "job 3:" in refused.stderr and "empty or negative" in refused.stderr
    assert "job 1" not in refused.stderr and "nothing was queued" in refused.stderr

    added = cli(server, "queue", "add", str(jobs), "-d", str(renders))
    assert added.returncode == 0, added.stderr
    batch = added.stdout.split("as batch ")[1].split(".")[0]
    timeline = cli(server, "queue", "add", str(_otio(tmp_path / "cut.otio", shipped_clip)), "-d", str(renders),
                   "-p", "charcoal drawing", "--steps", "2", "--size", "64",
                   "--template", "{clip}_{first}-{last}_{job}")
    assert timeline.returncode == 0, timeline.stderr
    otio_batch = timeline.stdout.split("as batch ")[1].split(".")[0]

    c = Client(server.endpoint, timeout=20, reconnect_timeout=120)
    c.connect()
    ids = [j.id for j in c.list_jobs(batch=batch)]
    otio_jobs = c.list_jobs(batch=otio_batch)
    # OTIO source ranges are on the media's timecode; jobs get frames counted from the file's first frame.
    assert [(j.name, j.frames) for j in otio_jobs] == [("shot_A", "30:33"), ("shot_B", "90:93")]
    table = cli(server, "queue")
    assert table.returncode == 0 and "STATE" in table.stdout and ids[2] in table.stdout

    # Kill the server (SIGKILL) while the batch's second job is working, then start it again.
    for e in c.events(ids[1], 1, frames=False, proxies=False):
        if e.kind is EventKind.PROGRESS and e.body.stage == "edit":
            break
    server.kill9()
    server.start()
    c.reconnect()  # a plain request does not reconnect by itself; `queue wait` below does

    downloads = tmp_path / "downloads"
    waited = cli(server, "queue", "wait", batch, "--download", str(downloads))
    assert waited.returncode == 0, waited.stderr
    assert "3 of 3 jobs succeeded" in waited.stdout
    finished = c.list_jobs(batch=batch)
    assert [j.state for j in finished] == ["done"] * 3
    assert c.status(ids[1]).attempts == 2  # the killed job ran again and finished
    written = json.loads((renders / summary.filename(batch)).read_text())
    assert written["succeeded"] == 3 and [e["job"] for e in written["jobs"]] == ids
    local = json.loads((downloads / summary.filename(batch)).read_text())
    for job, entry in zip(finished, local["jobs"]):
        (out,) = job.outputs
        assert Path(out).name.startswith("car_" if job.name == "car" else "carphone_pristine_")
        assert f"_{job.id}" in out and media.probe(out).frame_count == 4
        (mine,) = entry["outputs"]
        assert Path(mine).parent == downloads and sha256(Path(mine)) == sha256(Path(out))
        assert entry["sha256"][mine] == sha256(Path(out))

    assert c.wait(otio_jobs[-1].id).kind is EventKind.DONE
    outputs = [Path(j.outputs[0]).name for j in c.list_jobs(batch=otio_batch)]
    assert outputs == [f"shot_A_30-33_{otio_jobs[0].id}.mp4", f"shot_B_90-93_{otio_jobs[1].id}.mp4"]
    assert (renders / summary.filename(otio_batch)).is_file()
    c.close()


_DOWNLOADER = """
import sys
from bridge.wire.client import Client
from bridge.wire.download import download_job
c = Client(sys.argv[1], timeout=20)
c.connect()
download_job(c, sys.argv[2], sys.argv[3], chunk_size=512, on_chunk=lambda n, o, s: print(o, s, flush=True))
"""


def test_second_client_downloads_and_resumes_after_dying_mid_download(server, shipped_clip, tmp_path):
    c = Client(server.endpoint, timeout=20)
    c.connect()
    spec_out = server.out / "dl"
    job = c.submit(server.spec(shipped_clip, frames="4:11", steps=2, name="dl/clip.mp4")).job
    assert c.wait(job).kind is EventKind.DONE
    (info,) = c.files(job).files
    assert info.size > 4 * 512
    dest = tmp_path / "here"
    child = subprocess.Popen([sys.executable, "-c", _DOWNLOADER, server.endpoint, job, str(dest)], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
    for _ in range(3):
        assert child.stdout.readline()
    child.kill()  # the connection dies mid-download, without a goodbye
    child.wait(10)
    partial = partial_path(dest / info.name, info.sha256)
    kept = partial.stat().st_size
    assert 0 < kept < info.size and not (dest / info.name).exists()
    offsets = []
    (saved,) = download_job(c, job, dest, chunk_size=4096, on_chunk=lambda n, o, s: offsets.append(o))
    assert offsets[0] == min(kept + 4096, info.size)  # carried on from the bytes already there
    assert sha256(saved.path) == sha256(spec_out / "clip.mp4") == info.sha256 and not partial.exists()
    # `tokenflow submit --download` saves the result of a new job the same way.
    got = cli(server, "submit", str(shipped_clip), "-p", "ink", "--frames", "20:23", "--steps", "2", "--size", "64",
              "-o", str(server.out / "dl" / "ink.mp4"), "--download", str(tmp_path / "sub"))
    assert got.returncode == 0, got.stderr
    assert sha256(tmp_path / "sub" / "ink.mp4") == sha256(server.out / "dl" / "ink.mp4")
    c.close()
