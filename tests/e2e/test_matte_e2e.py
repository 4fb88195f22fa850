"""A matte through a real `tokenflow serve`: the job names a matte sequence on the server's
disk, and every frame the server sends keeps the source's pixels outside it, exactly."""

from __future__ import annotations

import numpy as np
from PIL import Image

from bridge.media import read_frames
from bridge.wire.client import Client, EventKind


def test_frames_from_the_server_keep_the_source_outside_the_matte(serve, shipped_clip, tmp_path):
    for n in range(20, 24):
        matte = np.zeros((144, 176), np.uint8)
        matte[:, 100:] = 255
        Image.fromarray(matte, "L").save(tmp_path / f"m.{n:04d}.png")
    c = Client(serve.endpoint, timeout=20.0)
    c.connect()
    try:
        spec = serve.spec(shipped_clip, frames="20:23", steps=2, name="matte.mp4",
                          matte=str(tmp_path / "m.%04d.png"), matte_feather=2.0)
        accepted = c.submit(spec)
        events = [accepted, *c.events(accepted.job, 2)]
        assert events[-1].kind is EventKind.DONE, events[-1]
        sources = dict(zip(range(20, 24), read_frames(shipped_clip, 20, 23)))
        frames = [e for e in events if e.kind is EventKind.FRAME]
        assert len(frames) == 4
        for e in frames:
            image, source = e.image(), sources[e.body.frame]
            assert np.array_equal(image[:, :90], source[:, :90])
            assert not np.array_equal(image[:, 110:], source[:, 110:])
    finally:
        c.close()
