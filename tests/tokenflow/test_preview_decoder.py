"""Instant previews (tokenflow/preview_decoder.py): with a tiny autoencoder of TAESD's
configuration (random weights, built here), keyframe previews and a preview of every
finished frame come from it, all before the full VAE decodes a frame; the final frames
are the full VAE's, unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.make_params import make_params
from tests.tokenflow.helpers import clip_frames
from tokenflow.engine import Engine
from tokenflow.events import FrameReady, Preview
from tokenflow.preview_decoder import make_random_taesd

BASE = make_params(prompt="a watercolor painting", steps=2, short_side=64, kf_interval=3, seed=3, preview_every=1,
                   batch_size=4)


@pytest.fixture(scope="module")
def taesd_dir(tmp_path_factory):
    return make_random_taesd(tmp_path_factory.mktemp("taesd"))


@pytest.fixture(scope="module")
def frames(shipped_clip):
    return clip_frames(shipped_clip, 30, 6)


def test_previews_come_from_the_tiny_decoder_before_any_full_decode(tiny_engine, taesd_dir, frames):
    engine = Engine(loaded=tiny_engine.model, preview_decoder=taesd_dir)
    assert engine.preview_decoder is not None
    timeline: list[str] = []
    vae, tiny = engine.model.vae, engine.preview_decoder.autoencoder
    full_decode, tiny_decode = vae.decode, tiny.decode
    vae.decode = lambda *a, **k: (timeline.append("full"), full_decode(*a, **k))[1]
    tiny.decode = lambda *a, **k: (timeline.append("tiny"), tiny_decode(*a, **k))[1]
    events: list = []
    try:
        engine.edit(frames, len(frames), BASE, on_event=lambda e: (timeline.append(type(e).__name__), events.append(e)))
    finally:
        del vae.decode, tiny.decode
    first_frame = timeline.index("FrameReady")
    assert timeline.index("full") < first_frame
    before_full = timeline[: timeline.index("full")]
    assert "tiny" in before_full and "Preview" in before_full
    previews = [e for e in events if isinstance(e, Preview)]
    finished = {i for e in previews if e.step == BASE.steps for i in e.frame_indices}
    assert finished == set(range(len(frames)))  # every frame previewed before the full decode
    assert all(img.shape[0] <= 128 for e in previews for img in e.images)
    # The full VAE decoded the final frames only: one call per chunk of batch_size frames.
    assert timeline.count("full") == -(-len(frames) // BASE.batch_size)
    # ... and they are what the engine without a tiny decoder produces.
    plain: list = []
    tiny_engine.edit(frames, len(frames), BASE, on_event=plain.append)
    ours = [e.image for e in events if isinstance(e, FrameReady)]
    theirs = [e.image for e in plain if isinstance(e, FrameReady)]
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs)) and len(ours) == len(frames)


def test_a_tiny_decoder_that_does_not_load_leaves_previews_to_the_full_vae(tiny_engine, tmp_path):
    engine = Engine(loaded=tiny_engine.model, preview_decoder=tmp_path)  # an empty folder
    assert engine.preview_decoder is None and "models pull madebyollin/taesd" in engine.preview_decoder_problem


def test_without_a_tiny_decoder_previews_use_the_full_vae(tiny_engine, frames):
    assert tiny_engine.preview_decoder is None
    events: list = []
    tiny_engine.edit(frames[:3], 3, dataclasses.replace(BASE, kf_interval=2), on_event=events.append)
    assert not [e for e in events if isinstance(e, Preview) and e.step == BASE.steps]  # no extra previews
