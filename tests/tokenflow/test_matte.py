"""Edit inside a matte (tokenflow/matte.py): outside pixels are the source's exactly, the
latents outside follow the source's inversion at every step, a feathered edge has no step."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.make_params import make_params
from tests.tokenflow.helpers import clip_frames
from tokenflow.aspect import geometry
from tokenflow.events import FrameReady
from tokenflow.matte import MatteOptions, blend, prepare

BASE = make_params(prompt="a watercolor painting", steps=3, short_side=64, kf_interval=3, seed=7)


@pytest.fixture(scope="module")
def frames(shipped_clip):
    return clip_frames(shipped_clip, 20, 6)


def half_matte(height: int, width: int, inside_from: float = 0.5) -> np.ndarray:
    """Right part white (edited), left part black (kept)."""
    matte = np.zeros((height, width), np.uint8)
    matte[:, int(width * inside_from):] = 255
    return matte


def edited_frames(engine, frames, params, mattes):
    events: list = []
    engine.edit(frames, len(frames), params, on_event=events.append, matte=mattes)
    return [e for e in events if isinstance(e, FrameReady)]


def test_outside_the_matte_the_source_pixels_come_back_exactly(tiny_engine, frames):
    h, w = frames[0].shape[:2]
    mattes = [half_matte(h, w, 0.4 + 0.05 * i) for i in range(len(frames))]  # a moving matte, frame-aligned
    params = dataclasses.replace(BASE, matte="matte.mov", matte_feather=6.0)
    ready = edited_frames(tiny_engine, frames, params, mattes)
    assert len(ready) == len(frames)
    prepared = prepare(mattes, len(frames), geometry(w, h, 64), MatteOptions(feather=6.0))
    for event, source, weights in zip(ready, frames, prepared.output):
        outside = weights == 0
        assert outside.sum() > 0.3 * outside.size
        assert np.array_equal(event.image[outside], source[outside])
        assert np.array_equal(event.best_image[outside], source[outside].astype(np.float32) / 255.0)
        inside = weights == 255
        assert np.abs(event.image[inside].astype(int) - source[inside]).mean() > 2  # the edit happened there
    # Inverted: the other side is kept.
    params = dataclasses.replace(params, matte_invert=True, matte_feather=0.0)
    ready = edited_frames(tiny_engine, frames, params, mattes)
    for event, source, matte in zip(ready, frames, mattes):
        assert np.array_equal(event.image[matte == 255], source[matte == 255])


def test_the_latents_outside_follow_the_source_inversion_at_every_step(tiny_engine, frames):
    """The mechanism, on the latents: every UNet call's edited branch equals its source
    branch (the inverted latents for that timestep) where the latent matte is 0, and
    differs inside it after the first step."""
    h, w = frames[0].shape[:2]
    geo = geometry(w, h, 64)
    mattes = [half_matte(h, w)] * len(frames)
    latent_matte = prepare(mattes, len(frames), geo, MatteOptions()).latent
    outside = (latent_matte[0, 0] == 0)
    inside = (latent_matte[0, 0] == 1)
    assert outside.any() and inside.any()
    calls: list[torch.Tensor] = []
    hook = tiny_engine.model.unet.register_forward_pre_hook(lambda module, args: calls.append(args[0].detach().clone()))
    try:
        edited_frames(tiny_engine, frames, dataclasses.replace(BASE, matte="alpha"), mattes)
    finally:
        hook.remove()
    # A batch is the source branch's call, then [uncond | cond] over the same latents twice;
    # the inversion's calls are neither.
    pairs = [(calls[i - 1], c) for i, c in enumerate(calls)
             if i and c.shape[0] == 2 * calls[i - 1].shape[0] and torch.equal(*c.chunk(2))]
    assert len(pairs) >= BASE.steps
    differs_inside = False
    for source, batch in pairs:
        current = batch.chunk(2)[0]
        assert torch.equal(current[..., outside], source[..., outside])
        differs_inside |= not torch.equal(current[..., inside], source[..., inside])
    assert differs_inside


def test_blend_is_the_source_where_the_matte_is_zero():
    latents, source = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    matte = torch.zeros(2, 1, 8, 8)
    matte[..., 4:] = 1
    matte[..., 3] = 0.5
    mixed = blend(latents, source, matte)
    assert torch.equal(mixed[..., :3], source[..., :3]) and torch.equal(mixed[..., 4:], latents[..., 4:])
    assert torch.allclose(mixed[..., 3], (latents[..., 3] + source[..., 3]) / 2)


def max_step(row: np.ndarray) -> float:
    return float(np.abs(np.diff(row.astype(np.float64))).max())


def test_a_feathered_edge_has_no_seam_step():
    """Source and edit flat but different: across the edge (the matte's direction) the
    composite changes by a small fraction of the difference per pixel, never all at once."""
    h, w = 32, 200
    geo = geometry(w, h, 64)
    source = np.full((h, w, 3), 40, np.uint8)
    edit = np.full((h, w, 3), 220, np.uint8)
    matte = half_matte(h, w)
    hard = prepare([matte], 1, geo, MatteOptions()).composite(0, source, edit)[0]
    assert max_step(hard[h // 2, :, 0]) == 180  # no feather: the whole difference in one pixel
    soft = prepare([matte], 1, geo, MatteOptions(feather=24.0)).composite(0, source, edit)[0]
    row = soft[h // 2, :, 0]
    assert row[0] == 40 and row[-1] == 220
    # A Gaussian of sigma 12 rises at most 1/(12*sqrt(2*pi)) = 3.3% per pixel.
    assert max_step(row) <= 0.04 * 180 + 1
    assert np.all(np.diff(row.astype(int)) >= 0)  # monotone: no ring


def test_a_wide_feather_on_the_reduced_copy_matches_the_full_one():
    from tokenflow.matte import _gaussian_blur, feathered

    matte = torch.from_numpy(half_matte(64, 256)).float()[None, None] / 255
    fast = feathered(matte, 40.0)
    full = _gaussian_blur(matte, 20.0)
    assert (fast - full).abs().max() < 2 / 255


def test_a_short_matte_is_refused_with_a_sentence():
    from tokenflow.errors import InvalidInput

    with pytest.raises(InvalidInput, match="covers every frame"):
        prepare([half_matte(8, 8)], 3, geometry(8, 8, 64), MatteOptions())
