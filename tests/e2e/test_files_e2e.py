"""The user's files and the server's disk, against a real `tokenflow serve` on loopback.

One server for the module (the tiny model on CPU); tests that need another server
(a second one on the same folder, a full disk) start their own.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time

import pytest

from bridge import media
from bridge.wire import protocol as p
from bridge.wire.client import Client, EventKind, ServerError
from tests.e2e.conftest import REPO, ServeProcess


def connect(endpoint: str) -> Client:
    c = Client(endpoint, timeout=20.0)
    c.connect()
    return c


def cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def wait_for_stage(c: Client, job: str, stage: str) -> None:
    for e in c.events(job, 2, frames=False, proxies=False):
        if e.kind is EventKind.PROGRESS and e.body.stage == stage:
            return
        assert not e.terminal, e
    raise AssertionError("the job ended first")


# --- delete ---


def test_delete_frees_the_stored_data_and_keeps_the_output(serve, shipped_clip):
    c = connect(serve.endpoint)
    job = c.submit(serve.spec(shipped_clip, frames="0:3", steps=2, name="delete_me.mp4")).job
    done = c.wait(job)
    assert done.kind is EventKind.DONE
    folder = serve.data / "jobs" / job
    assert any(folder.rglob("*")), "the job stored frames to replay"

    result = cli("jobs", "delete", job, "--server", serve.endpoint)
    assert result.returncode == 0, result.stderr
    assert f"Deleted job {job}" in result.stdout and "outputs were kept" in result.stdout
    assert not folder.exists()
    assert (serve.out / "delete_me.mp4").is_file()  # the user's file stays
    with pytest.raises(ServerError) as err:
        c.status(job)
    assert err.value.code == "unknown_job"
    c.close()


def test_delete_refuses_a_running_job_and_removes_a_queued_one(serve, shipped_clip):
    c = connect(serve.endpoint)
    running = c.submit(serve.spec(shipped_clip, frames="0:3", steps=40, name="long.mp4")).job
    queued = c.submit(serve.spec(shipped_clip, frames="4:7", steps=2, name="queued.mp4")).job
    wait_for_stage(c, running, "edit")
    with pytest.raises(ServerError) as err:
        c.request(p.Delete(), job=running)
    assert err.value.code == "job_running" and "jobs cancel" in err.value.hint
    assert c.status(running).state == "running"

    c.request(p.Delete(), job=queued)
    with pytest.raises(ServerError):
        c.status(queued)
    c.cancel(running)
    assert c.wait(running).kind is EventKind.CANCELLED
    assert not (serve.out / "queued.mp4").exists()  # it never ran
    c.close()


# --- one server per data folder ---


def test_a_second_server_on_the_same_data_folder_refuses_and_touches_no_job(serve, shipped_clip):
    c = connect(serve.endpoint)
    job = c.submit(serve.spec(shipped_clip, frames="0:3", steps=40, name="second_server.mp4")).job
    wait_for_stage(c, job, "edit")
    before = c.status(job)

    result = cli("serve", "--bind", "tcp://127.0.0.1:*", "--model", str(serve.model), "--device", "cpu",
                 "--data-dir", str(serve.data), "--cache-dir", str(serve.cache), "--no-preload")
    assert result.returncode == 2
    assert "Another tokenflow server" in result.stderr and "--data-dir" in result.stderr
    assert "Traceback" not in result.stderr

    after = c.status(job)
    assert after.state == "running" and after.attempts == before.attempts
    c.cancel(job)
    end = c.wait(job)
    assert end.kind is EventKind.CANCELLED
    kinds = [e.kind for e in c.events(job, 1, frames=False, proxies=False)]
    assert EventKind.REQUEUED not in kinds  # the second server did not "recover" it
    c.close()


# --- the user's files: input, existing outputs, unique names ---


def submit_error(c: Client, spec: p.JobSpec) -> ServerError:
    with pytest.raises(ServerError) as err:
        c.submit(spec)
    return err.value


def test_the_input_is_never_the_output_by_any_path(serve, shipped_clip):
    c = connect(serve.endpoint)
    clip = serve.out / "source.mp4"
    shutil.copy(shipped_clip, clip)
    os.link(clip, serve.out / "hardlink.mp4")
    original = clip.read_bytes()
    for output in (clip, serve.out / "hardlink.mp4", serve.out / "sub" / ".." / "source.mp4"):
        spec = dataclasses.replace(serve.spec(clip, frames="0:3", steps=2), output=str(output), overwrite=True)
        err = submit_error(c, spec)
        assert err.code == "output_is_input", (output, err)
        assert "input clip itself" in err.message
    assert clip.read_bytes() == original

    # `tokenflow edit` refuses it before loading any model.
    result = cli("edit", str(clip), "-p", "x", "-o", str(serve.out / "hardlink.mp4"), "--overwrite",
                 "--model", str(serve.model), "--device", "cpu")
    assert result.returncode == 2 and "input clip itself" in result.stderr, result.stderr
    c.close()


def test_an_existing_output_is_kept_unless_overwrite(serve, shipped_clip):
    c = connect(serve.endpoint)
    precious = serve.out / "precious.mp4"
    precious.write_bytes(b"the client's only copy")
    err = submit_error(c, serve.spec(shipped_clip, frames="0:3", steps=2, name="precious.mp4"))
    assert err.code == "output_exists" and "--overwrite" in err.hint
    assert precious.read_bytes() == b"the client's only copy"

    folder = serve.out / "seq"
    folder.mkdir()
    (folder / "frame_000100.png").write_bytes(b"a frame of another render")
    spec = dataclasses.replace(serve.spec(shipped_clip, frames="0:3", steps=2), output=str(folder) + "/")
    err = submit_error(c, spec)
    assert err.code == "output_exists" and "frame_000100.png" in err.message
    assert (folder / "frame_000100.png").read_bytes() == b"a frame of another render"

    job = c.submit(dataclasses.replace(serve.spec(shipped_clip, frames="0:3", steps=2, name="precious.mp4"),
                                       overwrite=True)).job
    assert c.wait(job).kind is EventKind.DONE
    assert media.probe(precious).frame_count == 4  # asked for in so many words: replaced
    c.close()


def test_default_outputs_are_unique_per_job(serve, shipped_clip):
    clip = serve.out / "twice.mp4"
    shutil.copy(shipped_clip, clip)
    jobs = []
    for prompt in ("ink", "oil"):
        result = cli("submit", str(clip), "-p", prompt, "--frames", "0:3", "--steps", "2", "--size", "64",
                     "--detach", "--server", serve.endpoint)
        assert result.returncode == 0, result.stderr
        jobs.append(result.stdout.strip())
    c = connect(serve.endpoint)
    outputs = []
    for job in jobs:
        done = c.wait(job)
        assert done.kind is EventKind.DONE, done
        outputs += done.body.outputs
    assert sorted(outputs) == sorted(str(serve.out / f"twice_tokenflow_{job}.mp4") for job in jobs)
    c.close()


def test_default_output_outside_the_allowed_folders_says_how_to_allow_it(serve, shipped_clip):
    result = cli("submit", str(shipped_clip), "-p", "x", "--frames", "0:3", "--server", serve.endpoint)
    assert result.returncode == 2
    assert "no -o was given" in result.stderr and "--allow-output" in result.stderr
    assert "Traceback" not in result.stderr


# --- links ---


def test_links_cannot_lead_outputs_out_of_the_allowed_folders(serve, shipped_clip, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (serve.out / "escape").symlink_to(outside, target_is_directory=True)
    (serve.out / "link.mp4").symlink_to(outside / "victim.mp4")
    (serve.out / "inner.mp4").symlink_to(serve.out / "real.mp4")
    c = connect(serve.endpoint)
    for output, code in ((serve.out / "escape" / "x.mp4", "output_not_allowed"),
                         (str(serve.out / "escape") + "/", "output_not_allowed"),  # the sequence folder itself
                         (serve.out / "link.mp4", "output_not_allowed"),
                         (serve.out / "inner.mp4", "output_not_allowed")):  # no writing through links at all
        err = submit_error(c, dataclasses.replace(serve.spec(shipped_clip, frames="0:3"), output=str(output)))
        assert err.code == code, (output, err)
    assert list(outside.iterdir()) == []
    c.close()


def test_the_output_is_checked_again_when_the_job_starts_writing(serve, shipped_clip, tmp_path):
    outside = tmp_path / "outside-later"
    outside.mkdir()
    later = serve.out / "later"
    later.mkdir()
    c = connect(serve.endpoint)
    blocker = c.submit(serve.spec(shipped_clip, frames="0:3", steps=40, name="blocker.mp4")).job
    wait_for_stage(c, blocker, "edit")
    job = c.submit(dataclasses.replace(serve.spec(shipped_clip, frames="0:3", steps=2),
                                       output=str(later / "x.mp4"))).job
    later.rmdir()  # swapped for a link to elsewhere while the job waits
    later.symlink_to(outside, target_is_directory=True)
    c.cancel(blocker)
    end = c.wait(job)
    assert end.kind is EventKind.FAILED and end.body.code == "output_not_allowed", end.body
    assert list(outside.iterdir()) == []
    c.close()


# --- bounds ---


def test_inputs_are_bounded_with_one_clear_sentence(serve, shipped_clip, tmp_path):
    c = connect(serve.endpoint)
    base = serve.spec(shipped_clip, frames="0:3", steps=2, name="bounds.mp4")
    err = submit_error(c, dataclasses.replace(base, params={**base.params, "prompt": "x" * 200_000}))
    assert err.code == "bad_field" and "77 tokens" in err.message
    err = submit_error(c, dataclasses.replace(base, params={**base.params, "short_side": 100_000}))
    assert err.code == "bad_params" and "64..2048" in err.message
    err = submit_error(c, dataclasses.replace(base, output=str(serve.out / "nul\0.mp4")))
    assert err.code == "bad_field" and "NUL" in err.message
    err = submit_error(c, dataclasses.replace(base, output=str(serve.out / ("n" * 300 + ".mp4"))))
    assert err.code == "bad_field" and "bytes long" in err.message
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n")
    err = submit_error(c, dataclasses.replace(base, input=str(text)))
    assert err.code == "media_error" and "not a media file" in err.message
    c.close()

    for size in ("100000", "64000000000"):
        result = cli("submit", str(shipped_clip), "-p", "x", "--size", size, "-o", str(serve.out / "big.mp4"),
                     "--server", serve.endpoint)
        assert result.returncode == 2 and "64..2048" in result.stderr, result.stderr
        assert "internal" not in result.stderr and "Traceback" not in result.stderr
    result = cli("submit", str(shipped_clip), "-p", "x" * 5000, "-o", str(serve.out / "long.mp4"),
                 "--server", serve.endpoint)
    assert result.returncode == 2 and "77 tokens" in result.stderr


def test_a_read_only_data_folder_gets_one_sentence(tmp_path, tiny_model_dir):
    data = tmp_path / "ro"
    data.mkdir()
    mounted = _mount_tmpfs(data, "ro,size=1m")
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("needs a read-only mount (root without mount rights ignores permissions)")
        data.chmod(0o500)
    try:
        result = cli("serve", "--bind", "tcp://127.0.0.1:*", "--model", str(tiny_model_dir), "--device", "cpu",
                     "--data-dir", str(data / "d"), "--no-preload")
    finally:
        if mounted:
            subprocess.run(["umount", str(data)], check=False)
    assert result.returncode == 2
    assert "cannot use the data folder" in result.stderr and "Traceback" not in result.stderr, result.stderr


# --- a full disk ---


def _mount_tmpfs(path, options: str) -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def _fill(folder) -> None:
    """Write until the disk says it is full."""
    with open(folder / "filler", "wb", buffering=0) as f:
        chunk = b"\xff" * (1 << 16)
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass


def test_a_full_disk_fails_the_job_with_a_clear_message(tmp_path, tiny_model_dir, shipped_clip):
    root = tmp_path / "small-disk"
    root.mkdir()
    if not _mount_tmpfs(root, "size=72m"):
        pytest.skip("needs root to mount a small tmpfs")
    server = ServeProcess(root, tiny_model_dir)
    server.cache = tmp_path / "cache"  # the data folder fills, not the cache
    try:
        server.start()
        c = connect(server.endpoint)
        # Refused at submit: the whole clip's stored frames would not fit.
        err = submit_error(c, dataclasses.replace(server.spec(shipped_clip, name="whole.mp4"), frames=None))
        assert err.code == "disk_full" and "free" in err.message

        job = c.submit(server.spec(shipped_clip, frames="0:3", steps=60, name="full.mp4")).job
        wait_for_stage(c, job, "edit")
        _fill(root)  # the disk fills up while the job runs
        deadline = time.monotonic() + 120  # never a job stuck `running`
        while c.status(job).state == "running":
            assert time.monotonic() < deadline, "the job is stuck running on a full disk"
            time.sleep(0.5)
        end = c.wait(job)
        assert end.kind is EventKind.FAILED, end
        assert end.body.code == "disk_full" and "data folder" in end.body.message and "is full" in end.body.message, end.body
        info = c.status(job)
        assert info.state == "failed" and info.error["code"] == "disk_full"
        (root / "filler").unlink()
        assert c.hello().engine_state == "ready"  # the server carries on
        c.close()
    finally:
        server.stop()
        subprocess.run(["umount", "-l", str(root)], check=False)
