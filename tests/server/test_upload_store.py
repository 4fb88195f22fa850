"""The upload store (server/uploads.py) on real files: budgets, a restart, expiry, deletion."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from bridge.wire import protocol as p
from server import upload_source
from server.upload_results import ResultIndex
from server.uploads import UploadError, Uploads, runs

GIB = 1 << 30


def opening(upload: str = "u1", **kw) -> p.UploadOpen:
    values = dict(upload=upload, width=4, height=2, channels=4, dtype="uint16", frame_rate="24", first=100, count=3)
    values.update(kw)
    return p.UploadOpen(**values)  # type: ignore[arg-type]


def frames_message(upload: str, frames: dict[int, bytes], **part) -> tuple[p.UploadFrames, tuple]:
    parts = [p.UploadPart(frame=n, offset=part.get("offset", 0), end=part.get("end", True), crc32=zlib.crc32(b))
             for n, b in frames.items()]
    return p.UploadFrames(upload=upload, parts=parts), tuple(frames.values())


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pixels() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 65536, (2, 4, 4), dtype=np.uint16) for _ in range(3)]


def store(root: Path, clock: Clock | None = None, free: int = 100 * GIB, **limits) -> Uploads:
    return Uploads(root, p.Limits(**limits), lambda path: free, clock or Clock())


def test_runs():
    assert runs([5, 1, 2, 3, 7, 8]) == [[1, 3], [5, 5], [7, 8]] and runs([]) == []


def test_frames_survive_a_restart_and_a_half_frame_does_not(tmp_path, pixels):
    uploads = store(tmp_path)
    uploads.open(opening())
    uploads.receive(*frames_message("u1", {100: pixels[0].tobytes(), 102: pixels[2].tobytes()}))
    half = pixels[1].tobytes()[:10]
    state = uploads.receive(*frames_message("u1", {101: half}, end=False))
    assert state.have == [[100, 100], [102, 102]] and state.missing == 1 and state.digest is None

    again = store(tmp_path)  # a new server run on the same data folder
    state = again.open(opening())
    assert state.have == [[100, 100], [102, 102]]
    assert not list((tmp_path / "uploads" / "u1" / "frames").glob("*.part"))
    with pytest.raises(UploadError) as exc:  # the half frame is gone: continuing it is refused
        again.receive(*frames_message("u1", {101: pixels[1].tobytes()[10:]}, offset=10))
    assert exc.value.code == "bad_part"
    state = again.receive(*frames_message("u1", {101: pixels[1].tobytes()}))
    assert state.complete and state.digest
    folder = tmp_path / "uploads" / "u1"
    # What the job reads: the model's 8-bit RGB and the alpha, as the protocol says.
    rgb = list(upload_source.rgb_frames(folder, 100, 102))
    for image, source in zip(rgb, pixels):
        assert image.dtype == np.uint8 and image.shape == (2, 4, 3)
        assert np.array_equal(image, np.rint(source[..., :3] / 257).astype(np.uint8))
    alpha = upload_source.alpha(folder, 101)
    assert alpha is not None and np.array_equal(alpha[..., 0], np.rint(pixels[1][..., 3] / 257).astype(np.uint8))


def test_a_frame_listed_without_its_file_is_missing_after_a_restart(tmp_path, pixels):
    uploads = store(tmp_path)
    uploads.open(opening())
    uploads.receive(*frames_message("u1", {100: pixels[0].tobytes()}))
    (tmp_path / "uploads" / "u1" / "frames" / "00000100.raw").unlink()
    assert store(tmp_path).open(opening()).have == []


def test_the_budget_counts_every_upload_held(tmp_path):
    frame = 4 * 2 * 4 * 2
    uploads = store(tmp_path, max_upload_bytes=frame * 5)
    uploads.open(opening("a", count=3))
    with pytest.raises(UploadError) as exc:
        uploads.open(opening("b", count=3))
    assert exc.value.code == "too_large" and "room for 2 such frames" in exc.value.message
    uploads.open(opening("b", count=2))
    assert uploads.held_bytes() == frame * 5
    with pytest.raises(UploadError) as exc:
        store(tmp_path / "small", free=1000).open(opening())
    assert exc.value.code == "disk_full"


def test_expiry_spares_uploads_in_use_and_touched_ones(tmp_path, pixels):
    clock = Clock()
    uploads = store(tmp_path, clock, upload_keep_s=100.0)
    for name in ("old", "used", "fresh"):
        uploads.open(opening(name))
    clock.now += 60
    uploads.touch("fresh")
    clock.now += 60
    assert uploads.sweep(in_use={"used"}) == ["old"]
    assert not (tmp_path / "uploads" / "old").exists()
    with pytest.raises(UploadError) as exc:
        uploads.delete("used", "local", in_use=lambda: {"used"})
    assert exc.value.code == "upload_in_use"
    assert uploads.delete("used", "local", in_use=set) > 0 and not (tmp_path / "uploads" / "used").exists()
    with pytest.raises(UploadError) as exc:
        uploads.source("fresh", "local")
    assert exc.value.code == "upload_incomplete" and "first missing is 100" in exc.value.message


def test_another_client_cannot_use_or_replace_an_upload(tmp_path):
    uploads = store(tmp_path)
    uploads.open(opening(), owner="alice")
    for call in (lambda: uploads.open(opening(), owner="bob"), lambda: uploads.source("u1", "bob")):
        with pytest.raises(UploadError) as exc:
            call()
        assert exc.value.code == "forbidden"


def test_result_entries_of_deleted_jobs_are_pruned(tmp_path):
    index = ResultIndex(tmp_path)
    index.record("k1", "job1")
    index.record("k2", "job2")
    assert index.prune(lambda job: job == "job2") == 1
    assert index.job_for("k1") is None and index.job_for("k2") == "job2"
