"""The user's files and the server's disk, against a real `tokenflow serve` on loopback.

One server for the module (the tiny model on CPU); tests that need another server
(a second one on the same folder, a full disk) start their own.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bridge import protocol as p
from bridge.client import Client, EventKind, ServerError
from tests.e2e.conftest import REPO


def connect(endpoint: str) -> Client:
    c = Client(endpoint, timeout=20.0)
    c.connect()
    return c


def cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "server.cli", *args], cwd=REPO, env=full_env,
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
