"""Uploaded mattes on the server's side (server/upload_matte.py): what a frame of each form
gives, the submit's checks with real uploads on disk (another client's matte), and a
queued job keeping its matte upload."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.media.matte import LUMA
from bridge.wire import protocol as p
from bridge.wire.client import ServerError
from bridge.wire.matte_ref import matte_upload, upload_matte
from server.resolved_job import ResolvedJob
from server.submission import SubmitError, resolve
from server.upload_matte import matte_channel
from server.uploads import Uploads
from tests.server.test_upload_store import frames_message


def test_each_form_of_frame_gives_its_matte():
    rng = np.random.default_rng(1)
    one = rng.integers(0, 256, (3, 5, 1), dtype=np.uint8)
    assert np.array_equal(matte_channel(one), one[..., 0]) and matte_channel(one).dtype == np.uint8
    rgba16 = rng.integers(0, 65536, (3, 5, 4), dtype=np.uint16)
    assert np.allclose(matte_channel(rgba16), rgba16[..., 3] / 65535.0)  # the alpha, at its precision
    rgb8 = rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    assert np.array_equal(matte_channel(rgb8), np.rint(rgb8.astype(np.float32) @ LUMA).astype(np.uint8))  # luma
    rgbf = np.array([[[2.0, -1.0, np.nan]]], np.float32)
    assert matte_channel(rgbf).dtype == np.float32 and 0.0 <= matte_channel(rgbf)[0, 0] <= 1.0


def test_the_matte_reference_form():
    assert matte_upload(upload_matte("m-1")) == "m-1"
    assert matte_upload("/clips/matte.%04d.png") is None and matte_upload("alpha") is None and matte_upload(None) is None
    with pytest.raises(ValueError):
        upload_matte("not an id")


def _upload(uploads: Uploads, upload: str, owner: str, channels: int) -> None:
    uploads.open(p.UploadOpen(upload=upload, width=64, height=64, channels=channels, dtype="uint8",
                              frame_rate="24", first=10, count=4), owner=owner)
    picture = np.zeros((64, 64, channels), np.uint8).tobytes()
    uploads.receive(*frames_message(upload, {n: picture for n in range(10, 14)}), owner=owner)


def test_another_clients_matte_upload_is_not_there_for_a_job(harness, tmp_path):
    uploads = Uploads(tmp_path / "data", p.Limits(), lambda path: 1 << 40)
    _upload(uploads, "m1", "alice", 1)
    for owner in ("alice", "bob"):  # each client's own source
        _upload(uploads, f"source-{owner}", owner, 3)

    def spec(owner: str) -> p.JobSpec:
        return p.JobSpec(input="", upload=f"source-{owner}", params={"prompt": "x", "matte": upload_matte("m1")},
                         output=str(harness.root / "out" / f"{owner}.mp4"))

    with pytest.raises(SubmitError) as exc:
        resolve(spec("bob"), "j1", harness.config, uploads=uploads, owner="bob")
    assert (exc.value.code, exc.value.field) == ("unknown_upload", "body.spec.params.matte")
    assert "m1" in exc.value.message and exc.value.hint
    # Its owner's job takes it, the folder and the digest kept with the job (and stored).
    resolved = resolve(spec("alice"), "j2", harness.config, uploads=uploads, owner="alice")
    assert resolved.matte_input == str(tmp_path / "data" / "uploads" / "m1") and resolved.matte_digest
    assert ResolvedJob.from_dict(resolved.to_dict()) == resolved
    # A file job without an uploaded matte stores the keys it always stored.
    plain = resolve(harness.spec(frames="10:13"), "j3", harness.config, uploads=uploads)
    assert "matte_input" not in plain.to_dict() and "matte_digest" not in plain.to_dict()


def test_a_queued_job_keeps_its_matte_upload(harness):
    c = harness.client()
    picture = np.zeros((6, 8, 1), np.uint8)
    shape = dict(width=8, height=6, channels=1, dtype="uint8", frame_rate="24", first=10, count=4)
    assert c.upload("kept-matte", lambda n: picture, **shape).complete
    c.queue("pause")
    try:
        job = c.submit(harness.spec(frames="10:13", params={"matte": upload_matte("kept-matte")})).job
        with pytest.raises(ServerError) as exc:
            c.request(p.UploadDelete(upload="kept-matte"))
        assert exc.value.code == "upload_in_use"
        c.cancel(job)
    finally:
        c.queue("resume")
