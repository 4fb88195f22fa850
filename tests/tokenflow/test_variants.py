"""Several prompts in one pass: the inversion and the source branch are computed once per
step and shared, and every variant comes out exactly as if its prompt were edited alone."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.make_params import make_params
from tests.tokenflow.helpers import clip_frames
from tokenflow.events import FrameReady

BASE = make_params(prompt="a watercolor painting", steps=3, short_side=64, kf_interval=3, seed=11, batch_size=3)
PROMPTS = ["a watercolor painting", "a snowy night", "an oil painting of a car"]


@pytest.fixture(scope="module")
def frames(shipped_clip):
    return clip_frames(shipped_clip, 40, 7)


def alone(engine, frames, params, prompt):
    events: list = []
    stats = engine.edit(frames, len(frames), dataclasses.replace(params, prompt=prompt), on_event=events.append)
    return engine.last_latents.clone(), [e.image for e in events if isinstance(e, FrameReady)], stats


@pytest.mark.parametrize("method", ["tokenflow", "per-frame"])
def test_variants_in_one_pass_equal_each_prompt_alone_bit_for_bit(tiny_engine, frames, method):
    # max_joint 2 with 3 keyframes: bounded groups with anchors and a carried keyframe too.
    params = dataclasses.replace(BASE, method=method, max_joint_keyframes=2)
    events: list = []
    stats = tiny_engine.edit(frames, len(frames), dataclasses.replace(params, variants=tuple(PROMPTS[1:])),
                             on_event=events.append)
    together = tiny_engine.last_variant_latents
    assert len(together) == 3
    for variant, prompt in enumerate(PROMPTS):
        latents, images, alone_stats = alone(tiny_engine, frames, params, prompt)
        assert torch.equal(together[variant], latents), prompt
        ours = [e.image for e in events if isinstance(e, FrameReady) and e.variant == variant]
        assert len(ours) == len(frames) and all(np.array_equal(a, b) for a, b in zip(ours, images))
    assert not torch.equal(together[0], together[1])  # the prompts matter
    # The source branch once per frame and step, two branches per variant: 7 evaluations, not 3 x 3.
    stage = "propagation" if method == "tokenflow" else "per_frame"
    assert stats.unet_passes[stage] * 3 == alone_stats.unet_passes[stage] * 7 > 0
