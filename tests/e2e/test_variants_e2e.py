"""Several prompts in one job end to end, through a real `tokenflow serve` (tiny model, CPU):
`tokenflow submit -p A -p B -p C`, a batch file with a `variants` column, downloads of every
prompt's output, and a server killed mid-job: every (variant, frame) still arrives exactly once."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from bridge import media
from bridge.wire.client import Client, EventKind
from bridge.wire.download import download_job
from bridge.wire.naming import slug
from tests.e2e.conftest import ServeProcess
from tests.e2e.test_queue_e2e import cli

PROMPTS = ["a watercolor painting", "snow at night, heavy", "oil paint"]
SMALL = ["--steps", "2", "--size", "64", "--kf-interval", "2"]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_model_dir):
    s = ServeProcess(tmp_path_factory.mktemp("variants"), tiny_model_dir).start()
    yield s
    s.stop()


def _client(server: ServeProcess, **kw) -> Client:
    c = Client(server.endpoint, timeout=20, **kw)
    c.connect()
    return c


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_submit_with_several_prompts_writes_and_downloads_one_output_each(server, shipped_clip, tmp_path):
    output = server.out / "cli.mp4"
    args = [a for prompt in PROMPTS for a in ("-p", prompt)]
    done = cli(server, "submit", str(shipped_clip), "--frames", "0:2", "-o", str(output), *args, *SMALL,
               "--download", str(tmp_path / "here"))
    assert done.returncode == 0, done.stderr
    expected = [output.with_name(f"cli_{slug(prompt)}.mp4") for prompt in PROMPTS]
    for prompt, path in zip(PROMPTS, expected):
        assert f"{prompt!r}: {path}" in done.stdout  # which output is whose
        assert media.probe(path).frame_count == 3
        # --download fetched every prompt's output, not only the first
        assert _sha256(tmp_path / "here" / path.name) == _sha256(path)
    job = done.stderr.split("Job ")[1].split(" ")[0]
    c = _client(server)
    try:
        assert c.status(job).variants == PROMPTS[1:]
        assert "+2 prompts" in cli(server, "jobs").stdout
        shown = cli(server, "jobs", "show", job).stdout
        assert f"prompt 3 of 3: {PROMPTS[2]!r} -> {expected[2]}" in shown  # counted from 1, as people do
        assert "output:" not in shown  # no file has the base name
        again = download_job(c, job, tmp_path / "again")
        assert sorted(s.path.name for s in again) == sorted(p.name for p in expected)
    finally:
        c.close()


def test_submit_refuses_an_empty_second_prompt_before_sending(server, shipped_clip):
    refused = cli(server, "submit", str(shipped_clip), "-p", "ink", "-p", " ", *SMALL)
    assert refused.returncode == 2 and "given by -p number 2 is empty" in refused.stderr, refused.stderr


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_a_batch_file_with_a_variants_column(server, shipped_clip, tmp_path, kind):
    renders = server.out / f"batch_{kind}"
    if kind == "csv":
        jobs = tmp_path / "jobs.csv"
        jobs.write_text("input,range,prompt,variants,steps,size,kf_interval,clip\n"
                        f"{shipped_clip},0:1,{PROMPTS[0]},\"{PROMPTS[1]} | {PROMPTS[2]}\",2,64,2,shot\n")
    else:
        jobs = tmp_path / "jobs.json"
        jobs.write_text(json.dumps([{"input": str(shipped_clip), "range": "0:1", "prompt": PROMPTS[0],
                                     "variants": PROMPTS[1:], "steps": 2, "size": 64, "kf_interval": 2,
                                     "clip": "shot"}]))
    added = cli(server, "queue", "add", str(jobs), "-d", str(renders), "--template", "{clip}_{job}", "--wait")
    assert added.returncode == 0, added.stderr
    batch = added.stdout.split("as batch ")[1].split(".")[0]
    c = _client(server)
    try:
        (info,) = c.list_jobs(batch=batch)
    finally:
        c.close()
    assert info.state == "done" and info.variants == PROMPTS[1:]
    assert [Path(out).name for out in info.outputs] == [f"shot_{info.id}_{slug(p)}.mp4" for p in PROMPTS]
    for prompt in PROMPTS:  # the summary names each prompt's output
        assert f"{prompt!r}: {renders / f'shot_{info.id}_{slug(prompt)}.mp4'}" in added.stdout
    summary = json.loads((renders / f"tokenflow-batch-{batch}.json").read_text())
    assert summary["jobs"][0]["variants"] == PROMPTS[1:] and len(summary["jobs"][0]["outputs"]) == 3


def test_kill9_mid_job_every_variant_frame_arrives_exactly_once(server, shipped_clip):
    c = _client(server, reconnect_timeout=120)
    try:
        spec = server.spec(shipped_clip, frames="30:35", steps=2, prompt=PROMPTS[0], name="killed.mp4",
                           variants=PROMPTS[1:])
        job = c.submit(spec).job
        events = []
        for e in c.events(job, 2, frames=True):
            events.append(e)
            if e.kind is EventKind.FRAME:  # the first prompt's first frame is announced: kill now
                break
        server.kill9()
        restarted = threading.Thread(target=server.start)
        restarted.start()
        events += list(c.events(job, events[-1].seq + 1))  # the client reconnects and re-subscribes
        restarted.join(120)
        assert [e.kind for e in events].count(EventKind.REQUEUED) == 1
        frames = [(e.body.variant, e.body.frame) for e in events if e.kind is EventKind.FRAME]
        proxies = [(e.body.variant, e.body.frame) for e in events
                   if e.kind is EventKind.PROXY and e.body.kind == "frame"]
        wanted = [(v, f) for v in range(3) for f in range(30, 36)]
        assert sorted(frames) == wanted and sorted(proxies) == wanted
        done = events[-1]
        assert done.kind is EventKind.DONE
        assert [v.prompt for v in done.body.variants] == PROMPTS
        for variant in done.body.variants:
            (out,) = variant.outputs
            assert media.probe(out).frame_count == 6
    finally:
        c.close()
