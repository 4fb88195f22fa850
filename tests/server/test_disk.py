"""What the server keeps on disk: retention, the cache limit, stored frames, keys, recovery of outputs."""

from __future__ import annotations

import json
import os
import stat
import time

import numpy as np
import pytest

from bridge.wire import protocol as p
from server.disk import Retention, empty_trash, is_disk_full, remove_job_folder, sweep, trim_cache
from server.journal import Blob, BlobCache, Doorbell, Journal
from server.paths import DataDir
from server.scheduler import Scheduler
from server.security import SecurityError, init_keys
from server.store import JobStore
from tests.server.jobs import resolved_job


@pytest.fixture
def store_and_data(tmp_path):
    data = DataDir(tmp_path / "data").create()
    store = JobStore(data.database)
    yield store, data
    store.close()


def _job(store: JobStore, data: DataDir, job_id: str, state: str, age_days: float, size: int) -> None:
    store.create_job(job_id, resolved_job(input="x", output=f"/out/{job_id}.mp4"), priority=0, client_token=None,
                     position=0)
    if state != p.JobState.QUEUED:
        ending = {"done": p.Done(), "failed": p.Failed(), "cancelled": p.Cancelled()}[state]
        store.append_event(job_id, ending, state=p.JobState(state))
    store._db.execute("UPDATE jobs SET updated = ? WHERE id = ?", (time.time() - age_days * 86400, job_id))
    folder = data.job(job_id) / "frames"
    folder.mkdir(parents=True)
    (folder / "00000000.png").write_bytes(b"\0" * size)


def test_retention_deletes_old_and_oversized_finished_jobs_only(store_and_data, tmp_path):
    store, data = store_and_data
    output = tmp_path / "out.mp4"
    output.write_bytes(b"the user's")
    _job(store, data, "old", "done", 40, 10)
    _job(store, data, "old_queued", "queued", 40, 10)
    _job(store, data, "big_a", "failed", 3, 600)
    _job(store, data, "big_b", "cancelled", 2, 600)
    _job(store, data, "new", "done", 1, 100)
    deleted = sweep(store, Scheduler(), data, Retention(keep_days=30, keep_bytes=1000))
    assert deleted == ["old", "big_a"]  # the oldest first, until the rest fits in 1000 bytes
    assert store.get("old") is None and not data.job("old").exists()
    assert store.get("old_queued") is not None  # a queued job is never retention's to delete
    assert store.get("big_b") is not None and store.get("new") is not None
    assert output.read_bytes() == b"the user's"


def test_cache_trim_evicts_least_recently_used(tmp_path):
    now = time.time()
    for i, name in enumerate(("a", "b", "c")):
        path = tmp_path / f"inversion-{name}.safetensors"
        path.write_bytes(b"\0" * 100)
        os.utime(path, (now - 100 + i, now - 100 + i))
    os.utime(tmp_path / "inversion-a.safetensors")  # a hit: used last
    (tmp_path / "unrelated.txt").write_bytes(b"\0" * 1000)
    assert trim_cache(tmp_path, 200) == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "inversion-a.safetensors", "inversion-c.safetensors", "unrelated.txt"]


def test_a_cache_hit_refreshes_the_entry(tmp_path):
    import torch

    from tokenflow.cache import InversionCache

    cache = InversionCache(tmp_path)
    cache.put("k", {1: torch.zeros(2)})
    path = tmp_path / "inversion-k.safetensors"
    os.utime(path, (1, 1))
    assert cache.get("k") is not None
    assert path.stat().st_mtime > 1000


def test_frames_are_stored_as_lossless_png(tmp_path):
    data = DataDir(tmp_path / "data").create()
    store = JobStore(data.database)
    journal = Journal(store, data, BlobCache(max_bytes=0), Doorbell())
    store.create_job("j", resolved_job(), priority=0, client_token=None, position=0)
    image = np.random.default_rng(0).integers(0, 256, (36, 52, 3), dtype=np.uint8)
    journal.append("j", p.Frame(frame=0), blob=Blob("frames/00000000.png", image), frame=0)
    stored = data.job("j") / "frames" / "00000000.png"
    assert stored.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(journal.read_blob("j", "frames/00000000.png"), image)

    # Deleted while a client is being sent its frames: they stay readable for the grace period.
    remove_job_folder(data, "j")
    assert not data.job("j").exists()
    assert np.array_equal(journal.read_blob("j", "frames/00000000.png"), image)
    empty_trash(data, grace_s=3600)
    assert np.array_equal(journal.read_blob("j", "frames/00000000.png"), image)
    empty_trash(data, grace_s=0)
    assert not any(data.jobs.rglob("*.png"))
    store.close()


def test_disk_full_is_recognised_through_wrappers():
    import errno
    import sqlite3

    from bridge.media import MediaError

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise MediaError("Writing frame 3 failed") from inner
    except MediaError as exc:
        assert is_disk_full(exc)
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert not is_disk_full(ValueError("no"))


def test_init_keys_keeps_existing_keys_unless_forced(tmp_path):
    keys = tmp_path / "keys"
    server_public, client_secret = init_keys(keys)
    first = (keys / "server.key_secret").read_bytes()
    for secret in keys.glob("*.key_secret"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    with pytest.raises(SecurityError, match="--force"):
        init_keys(keys)
    assert (keys / "server.key_secret").read_bytes() == first
    init_keys(keys, force=True)
    assert (keys / "server.key_secret").read_bytes() != first


def test_a_rerun_cleans_stale_staging_and_finishes_its_own_output(tmp_path, shipped_clip):
    """A crash while the output was being put in place: the re-run removes the staging the
    claim names and may replace the files it had already placed; a foreign file stays refused."""
    from bridge.media.output_safety import OutputRefused, check_output
    from server.job_run import CLAIM, JobRun

    data = DataDir(tmp_path / "data").create()
    store = JobStore(data.database)
    journal = Journal(store, data, BlobCache(), Doorbell())
    out = tmp_path / "out"
    out.mkdir()
    output = str(out / "shot.mp4")
    spec = resolved_job(input=str(shipped_clip), output=output, first=0, last=3, n_frames=4)
    store.create_job("j", spec, priority=0, client_token=None, position=0)
    job = store.start_attempt("j")
    staging = out / ".shot.abcd.partial.mp4"
    staging.write_bytes(b"half")
    (out / "shot.mp4").write_bytes(b"placed by the first attempt")
    checks = []

    def policy(s, own):
        checks.append(own)
        check_output(s.output, source=s.input, overwrite=False, allowed=[out], own=own)

    run = JobRun(job, journal, engines=None, should_cancel=lambda: False, shutting_down=lambda: False,
                 output_check=policy)
    claim = journal.blob_path("j", CLAIM)
    claim.parent.mkdir(parents=True, exist_ok=True)
    claim.write_text(json.dumps({"output": output, "staging": [str(staging)], "finalising": False}))
    with pytest.raises(OutputRefused):  # not yet being placed: the file is not this job's
        run._check_output()
    assert not staging.exists()

    claim.write_text(json.dumps({"output": output, "staging": [], "finalising": True, "since": time.time()}))
    assert run._check_output() is True  # its own output: the writer may replace it
    assert checks[-1] == (output,)

    os.utime(out / "shot.mp4", (1_000_000_000, 1_000_000_000))  # a file from before the job: not its own
    with pytest.raises(OutputRefused):
        run._check_output()
    assert (out / "shot.mp4").read_bytes() == b"placed by the first attempt"
    store.close()


def test_host_memory_failures_are_out_of_memory():
    from server.job_run import _describe

    code, message, _ = _describe(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"))
    assert code == "out_of_memory" and "machine ran out of memory" in message
    assert _describe(MemoryError())[0] == "out_of_memory"


def test_edit_default_names_never_reuse_a_taken_one(tmp_path):
    from bridge.media.output_safety import next_free_output

    assert next_free_output(str(tmp_path / "clip_tokenflow.mp4")) == str(tmp_path / "clip_tokenflow.mp4")
    (tmp_path / "clip_tokenflow.mp4").write_bytes(b"first result")
    (tmp_path / "clip_tokenflow_2.mp4").write_bytes(b"second result")
    assert next_free_output(str(tmp_path / "clip_tokenflow.mp4")) == str(tmp_path / "clip_tokenflow_3.mp4")
    (tmp_path / "clip_tokenflow").mkdir()
    assert next_free_output(str(tmp_path / "clip_tokenflow") + "/") == str(tmp_path / "clip_tokenflow_2") + "/"
