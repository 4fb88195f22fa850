"""The render queue in-process (fake engine): pause/resume across a restart, retry, dry runs,
named outputs that never reuse a file, batch summaries, and chunked, resumable downloads."""

from __future__ import annotations

import hashlib
import json

import pytest

from bridge.wire import protocol as p
from bridge.wire import summary
from bridge.wire.client import EventKind, ServerError
from bridge.wire.download import download_job, partial_path


def named(harness, batch: str | None = None, row: int = 1, frames: str = "0:3", **kw) -> p.JobSpec:
    return harness.spec(frames=frames, output=None, destination=str(harness.root / "out" / "renders"),
                        batch=batch, row=row, **kw)


def test_named_output_dry_run_and_no_reuse(harness):
    c = harness.client()
    spec = named(harness, prompt="A Watercolor painting!", params={"seed": 7}, name="shot 010")
    preview = c.check(spec)
    assert preview.endswith("/renders/shot_010_0-3_a-watercolor-painting_7_JOBID.mp4")
    assert c.list_jobs() == []  # a dry run queues nothing
    # Without {job} in the template, the second job of the same name gets the next free name,
    # also while the first is still only queued (its name is reserved), and an existing file is never reused.
    (harness.root / "out" / "renders").mkdir(parents=True)
    existing = harness.root / "out" / "renders" / "shot_010_0-3.mp4"
    existing.write_bytes(b"an editor's file")
    template = {"name_template": "{clip}_{first}-{last}"}
    spec = named(harness, name="shot 010", **template)
    first, second = c.submit(spec).job, c.submit(named(harness, name="shot 010", **template)).job
    outputs = [c.status(j).output for j in (first, second)]
    assert [o.rsplit("/", 1)[1] for o in outputs] == ["shot_010_0-3_2.mp4", "shot_010_0-3_3.mp4"]
    for j in (first, second):
        assert c.wait(j).kind is EventKind.DONE
    assert existing.read_bytes() == b"an editor's file"


def test_dry_run_names_the_problem(harness):
    c = harness.client()
    with pytest.raises(ServerError) as err:
        c.check(named(harness, frames="0:9999"))
    assert err.value.field == "body.spec.frames" and "past the end" in err.value.message
    with pytest.raises(ServerError) as err:
        c.check(named(harness, name_template="{clip}_{nope}"))
    assert err.value.field == "body.spec.name_template" and "{nope}" in err.value.message
    with pytest.raises(ServerError) as err:
        c.check(p.JobSpec(input=str(harness.clip), params={"prompt": "x"}, destination="/elsewhere"))
    assert err.value.code == "output_not_allowed"


def test_pause_keeps_across_restart_and_resume_runs_the_queue(harness):
    c = harness.client()
    assert c.queue("pause").paused
    job = c.submit(named(harness)).job
    # While paused nothing starts: the state machine cannot hand out the job (no waiting needed to see it).
    assert harness.server.scheduler.take(timeout=0) is None
    harness.stop()
    harness.start()
    c = harness.client()
    state = c.queue()
    assert state.paused and state.queued == 1 and c.status(job).state == "queued"
    assert not c.queue("resume").paused
    assert c.wait(job).kind is EventKind.DONE


def test_pause_lets_the_running_job_finish(harness):
    harness.engine.step_s = 0.05
    c = harness.client()
    running = c.submit(named(harness, steps=40, prompt="first")).job
    queued = c.submit(named(harness, row=2, prompt="second")).job
    for e in c.events(running, 2, frames=False, proxies=False):
        if e.kind is EventKind.PROGRESS and e.body.stage == "edit":
            break
    assert c.queue("pause").running == running
    assert c.wait(running).kind is EventKind.DONE
    # Paused: the scheduler hands out nothing, to the worker or anyone else.
    assert c.status(queued).state == "queued" and harness.server.scheduler.take(timeout=0) is None
    c.queue("resume")
    assert c.wait(queued).kind is EventKind.DONE


def test_retry_a_failed_job_and_the_batch_summary(harness):
    c = harness.client()
    good = c.submit(named(harness, batch="b1", row=1, prompt="fine")).job
    bad = c.submit(named(harness, batch="b1", row=2, prompt="trigger-oom")).job
    assert c.wait(good).kind is EventKind.DONE and c.wait(bad).kind is EventKind.FAILED
    path = harness.root / "out" / "renders" / summary.filename("b1")
    written = json.loads(path.read_text())
    assert (written["succeeded"], written["failed"], written["finished"]) == (1, 1, True)
    by_job = {e["job"]: e for e in written["jobs"]}
    assert by_job[good]["outputs"] == c.status(good).outputs and by_job[bad]["error"]["code"] == "out_of_memory"
    with pytest.raises(ServerError) as err:
        c.retry(good)
    assert err.value.code == "not_retryable"
    info = c.retry(bad)
    assert info.state == "queued" and info.error is None
    events = list(c.events(bad, info.last_seq))  # from the `requeued` event to the new attempt's end
    assert events[0].kind is EventKind.REQUEUED and events[-1].kind is EventKind.FAILED  # oom again
    again = json.loads(path.read_text())
    assert again["written_at"] >= written["written_at"] and c.status(bad).attempts == 2
    assert [j.id for j in c.list_jobs(batch="b1")] == [good, bad]


def test_download_resumes_and_verifies(harness, tmp_path):
    c = harness.client()
    job = c.submit(named(harness, frames="0:7")).job
    done = c.wait(job)
    listing = c.files(job)
    (info,) = listing.files
    source = harness.root / "out" / "renders" / info.name
    data = source.read_bytes()
    assert info.size == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
    assert done.body.files[0].sha256 == info.sha256
    # A download cut off after two chunks leaves its partial file; the next one carries on from there.
    dest = tmp_path / "local"
    calls = []

    def cut(name, offset, size):
        calls.append(offset)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_job(c, job, dest, chunk_size=1000, on_chunk=cut)
    partial = partial_path(dest / info.name, info.sha256)
    assert partial.stat().st_size == 2000
    offsets = []
    (saved,) = download_job(c, job, dest, chunk_size=1000, on_chunk=lambda n, o, s: offsets.append(o))
    assert offsets[0] == 3000  # resumed: the first chunk asked for starts after the kept bytes
    assert saved.path.read_bytes() == data and not partial.exists()
    # Again: the identical file is recognised, nothing is overwritten or duplicated.
    (again,) = download_job(c, job, dest)
    assert again.already_there and sorted(p.name for p in dest.iterdir()) == [info.name]
    # A different file in the way keeps its content; the download takes the next free name.
    other = dest / "other"
    other.mkdir()
    (other / info.name).write_bytes(b"mine")
    (third,) = download_job(c, job, other)
    assert (other / info.name).read_bytes() == b"mine" and third.path.name.endswith("_2.mp4")


def test_read_refuses_what_is_not_a_listed_output(harness):
    c = harness.client()
    job = c.submit(named(harness)).job
    c.wait(job)
    (info,) = c.files(job).files
    for name in ("../../../etc/passwd", "/etc/passwd", "renders/../x"):
        with pytest.raises(ServerError) as err:
            c.read(job, name, 0, 10)
        assert err.value.code == "unknown_file"
    with pytest.raises(ServerError) as err:
        c.read(job, info.name, info.size + 1, 10)
    assert err.value.code == "bad_offset"
    chunk, data = c.read(job, info.name, info.size - 5, 100)
    assert len(data) == 5 and chunk.eof
    (harness.root / "out" / "renders" / info.name).write_bytes(b"changed")
    with pytest.raises(ServerError) as err:
        c.read(job, info.name, 0, 10)
    assert err.value.code == "output_changed"
    queued = c.submit(named(harness, row=2, steps=400)).job
    with pytest.raises(ServerError) as err:
        c.read(queued, info.name, 0, 10)
    assert err.value.code == "not_done"
    c.cancel(queued)


def test_queue_commands(harness, tmp_path, capsys):
    from cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["queue", "--server", harness.endpoint, *args])
        out, err = capsys.readouterr()
        return code, out, err

    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"defaults": {"input": str(harness.clip), "steps": 2, "kf_interval": 4}, "jobs": [
        {"range": "0:3", "prompt": "one"},
        {"range": "10:13", "prompt": "two"},
        {"range": "20:22", "prompt": "three", "preset": "png8", "clip": "seq"},
    ]}))
    assert run("pause")[0] == 0
    code, out, err = run("add", str(jobs), "-d", str(harness.root / "out" / "q"))
    assert code == 0, err
    ids = [line.split()[0] for line in out.splitlines()[1:4]]
    assert run("move", ids[2], "1")[0] == 0
    code, out, _ = run("remove", ids[1])
    assert code == 0 and "Removed job" in out
    code, out, _ = run()
    assert out.splitlines()[0].startswith("Queue PAUSED") and ids[1] not in out
    rows = [line.split()[:3] for line in out.splitlines()[2:]]
    assert rows == [["1", ids[2], "queued"], ["2", ids[0], "queued"]]  # moved to the front
    assert run("resume")[0] == 0
    code, out, err = run("wait")
    assert code == 0, err
    assert "2 of 2 jobs succeeded" in out
    seq = harness.root / "out" / "q" / f"seq_20-22_three_0_{ids[2]}"
    assert sorted(f.name for f in seq.iterdir()) == [f"{seq.name}_{n:06d}.png" for n in (20, 21, 22)]
    assert f"{seq}/ (3 files)" in out
    code, out, err = run("--batch", out.split()[1].rstrip(":"), "--download", str(tmp_path / "local"))
    assert code == 0, err
    here = tmp_path / "local" / seq.name
    assert sorted(f.read_bytes() for f in here.iterdir()) == sorted(f.read_bytes() for f in seq.iterdir())
    code, out, err = run("retry", ids[0])
    assert code == 2 and "only failed or cancelled jobs" in err


def test_an_idle_client_can_ask_again(harness):
    # `queue wait` and downloads keep one client for a long time between requests: being idle
    # longer than the heartbeat liveness (1 s here) is not a lost connection.
    import time

    c = harness.client()
    assert c.queue().queued == 0
    time.sleep(harness.config.limits.heartbeat_s * harness.config.limits.heartbeat_liveness + 0.3)  # idleness itself
    assert c.queue().queued == 0


def test_a_damaged_download_is_removed_not_named(harness, tmp_path):
    from bridge.wire.download import DownloadError

    c = harness.client()
    job = c.submit(named(harness)).job
    c.wait(job)
    (info,) = c.files(job).files
    served = harness.root / "out" / "renders" / info.name
    data = bytearray(served.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different bytes: only the checksum can tell
    served.write_bytes(bytes(data))
    with pytest.raises(DownloadError, match="SHA-256 does not match"):
        download_job(c, job, tmp_path / "dl")
    assert list((tmp_path / "dl").iterdir()) == []  # neither a file under the final name nor a partial left


def test_download_rides_out_a_server_restart(harness, tmp_path):
    import dataclasses

    c = harness.client(reconnect_timeout=30)
    job = c.submit(named(harness, frames="0:7")).job
    c.wait(job)
    (info,) = c.files(job).files
    harness.config = dataclasses.replace(harness.config, bind=harness.endpoint)  # restart on the same port
    offsets, reconnects = [], []

    def stop_once(name, offset, size):
        offsets.append(offset)
        if len(offsets) == 1:
            harness.server.stop()  # the requests in flight die with it; the client hears silence

    def reconnect():  # the client gave up on the old connection: the server comes back now
        reconnects.append(offsets[-1])
        harness.start()
        real_reconnect()

    real_reconnect, c.reconnect = c.reconnect, reconnect
    (saved,) = download_job(c, job, tmp_path / "dl", chunk_size=1000, window=3, on_chunk=stop_once)
    assert len(reconnects) == 1 and reconnects[0] < info.size  # one drop, mid-file
    # Every byte arrived once, in order: after the drop it carried on where it was, not from 0.
    assert offsets == [*range(1000, info.size, 1000), info.size]
    assert hashlib.sha256(saved.path.read_bytes()).hexdigest() == info.sha256
