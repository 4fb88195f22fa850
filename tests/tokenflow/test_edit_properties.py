"""Properties of the TokenFlow edit that hold for any weights (ALGORITHM.md, last section)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.make_params import make_params
from tests.tokenflow.helpers import clip_frames, relative_error
from tokenflow.attention import LayerCache, PlanIndex, nearest_tokens, normalized, propagate_tokens
from tokenflow.events import FrameReady, Preview, Progress
from tokenflow.keyframes import neighbours

BASE = make_params(prompt="a watercolor painting", steps=3, short_side=64, kf_interval=3, seed=7)


@pytest.fixture(scope="module")
def frames(shipped_clip):
    return clip_frames(shipped_clip, 20, 12)


def run(engine, frames, params):
    events = []
    stats = engine.edit(frames, len(frames), params, on_event=events.append)
    return engine.last_latents.clone(), stats, events


def test_static_clip_tokenflow_equals_per_frame(family_engine, frames):
    static = [frames[0]] * 6
    params = dataclasses.replace(BASE, kf_interval=2)
    tokenflow, stats, _ = run(family_engine, static, params)
    per_frame, _, _ = run(family_engine, static, dataclasses.replace(params, method="per-frame"))
    assert stats.unet_passes["propagation"] > 0  # propagation really ran
    assert relative_error(tokenflow, per_frame) <= 1e-3


def test_result_does_not_depend_on_batch_size(tiny_engine, frames):
    # Six keyframes in groups of three: exercises the bounded groups and the carried keyframe too.
    params = dataclasses.replace(BASE, kf_interval=2, max_joint_keyframes=3)
    small, _, _ = run(tiny_engine, frames, dataclasses.replace(params, batch_size=2))
    large, _, _ = run(tiny_engine, frames, dataclasses.replace(params, batch_size=8))
    assert relative_error(small, large) <= 1e-4


def test_same_seed_same_frames_other_seed_other_keyframes(tiny_engine, frames):
    first, _, _ = run(tiny_engine, frames, BASE)
    keyframes_first = tiny_engine.last_keyframes
    again, _, _ = run(tiny_engine, frames, BASE)
    assert torch.equal(first, again)
    run(tiny_engine, frames, dataclasses.replace(BASE, seed=8))
    assert tiny_engine.last_keyframes != keyframes_first


def test_every_frame_comes_out_once_in_order_at_source_size(tiny_engine, frames):
    clip = frames[:11]  # not a multiple of the keyframe interval or the batch size
    _, stats, events = run(tiny_engine, clip, dataclasses.replace(BASE, kf_interval=4, batch_size=3))
    ready = [e for e in events if isinstance(e, FrameReady)]
    assert [e.index for e in ready] == list(range(11))
    assert all(e.image.shape == clip[0].shape and e.image.dtype == clip[0].dtype for e in ready)
    assert stats.frames == 11
    # Proxies come first: a keyframe preview precedes the first full frame.
    kinds = [type(e) for e in events]
    assert kinds.index(Preview) < kinds.index(FrameReady)
    assert any(isinstance(e, Progress) and e.stage == "edit" for e in events)


def test_unet_passes_per_step_match_per_frame_editing(tiny_engine, frames):
    _, stats, _ = run(tiny_engine, frames, BASE)
    steps, n = BASE.steps, len(frames)
    assert stats.unet_passes["inversion"] == n * steps
    # Keyframes are not run again in the propagation pass: three evaluations per frame and step.
    assert stats.unet_passes["keyframes"] + stats.unet_passes["propagation"] == 3 * n * steps


def test_turning_propagation_off_changes_the_frames(tiny_engine, frames):
    on, _, _ = run(tiny_engine, frames, BASE)
    off, stats, _ = run(tiny_engine, frames, dataclasses.replace(BASE, propagate=False))
    assert stats.unet_passes.get("propagation", 0) == 0
    assert relative_error(on, off) > 1e-3


def test_one_keyframe_per_frame_propagation_is_identity():
    generator = torch.Generator().manual_seed(0)
    cache = LayerCache()
    keyframes = [0, 1, 2]
    features = torch.randn(3, 16, 8, generator=generator)
    for frame in keyframes:
        cache.source_outputs[frame] = torch.randn(16, 8, generator=generator)
        cache.outputs[(0, frame)] = torch.randn(2, 16, 8, generator=generator)
        cache.source_features[frame] = normalized(features[frame])
    plan = PlanIndex.build([neighbours(f, keyframes) for f in keyframes], torch.device("cpu"))
    source = propagate_tokens(features, plan, cache)
    edited = propagate_tokens(features, plan, cache, variant=0)
    for f in keyframes:
        assert torch.equal(source[0, f], cache.source_outputs[f]) and torch.equal(edited[:, f], cache.outputs[(0, f)])
    assert torch.equal(nearest_tokens(features[0], features[0]), torch.arange(16))


def test_kf_interval_one_runs_no_propagation(tiny_engine, frames):
    _, stats, _ = run(tiny_engine, frames[:4], dataclasses.replace(BASE, kf_interval=1))
    assert stats.unet_passes.get("propagation", 0) == 0 and stats.unet_passes["keyframes"] == 3 * 4 * BASE.steps


def test_cached_inversion_gives_the_same_frames(tiny_model_dir, frames, tmp_path):
    from tokenflow.engine import Engine

    engine = Engine(str(tiny_model_dir), device="cpu", cache_dir=tmp_path)
    fresh, stats_fresh, _ = run(engine, frames[:6], BASE)
    cached, stats_cached, _ = run(engine, frames[:6], dataclasses.replace(BASE, prompt="a pencil sketch"))
    assert not stats_fresh.inversion_cached and stats_cached.inversion_cached
    assert "inversion" not in stats_cached.unet_passes
    assert "encode" not in stats_cached.seconds  # the hit is known from the pixels: no VAE encoding at all
    again, _, _ = run(engine, frames[:6], BASE)
    assert torch.equal(fresh, again)
    # Another range of the clip is other content: a miss.
    _, stats_other, _ = run(engine, frames[1:7], BASE)
    assert not stats_other.inversion_cached


def test_processors_and_hooks_are_removed_after_an_edit(tiny_engine, frames):
    unet = tiny_engine.model.unet
    before = {k: type(v) for k, v in unet.attn_processors.items()}
    run(tiny_engine, frames[:3], BASE)
    assert {k: type(v) for k, v in unet.attn_processors.items()} == before
    conv = unet.get_submodule(tiny_engine.sites.pnp_conv)
    assert not conv._forward_hooks


def test_cancel_stops_within_a_step(tiny_engine, frames):
    from tokenflow.events import Cancelled

    seen = []

    def should_cancel() -> bool:
        return any(isinstance(e, Progress) and e.stage == "edit" for e in seen)

    with pytest.raises(Cancelled):
        tiny_engine.edit(frames, len(frames), BASE, on_event=seen.append, should_cancel=should_cancel)
    assert not any(isinstance(e, FrameReady) for e in seen)


def test_cold_job_previews_before_the_whole_clip_is_inverted(tiny_model_dir, frames, tmp_path):
    """The first keyframe group is inverted first and previewed at once; that preview is
    the same as step 0's preview of a job whose inversion was cached."""
    import numpy as np

    from tokenflow.engine import Engine

    engine = Engine(str(tiny_model_dir), device="cpu", cache_dir=tmp_path)
    params = dataclasses.replace(BASE, kf_interval=4, max_joint_keyframes=2)
    _, cold_stats, cold = run(engine, frames, params)
    first_preview = next(i for i, e in enumerate(cold) if isinstance(e, Preview))
    last_inversion = max(i for i, e in enumerate(cold) if isinstance(e, Progress) and e.stage == "inversion")
    assert first_preview < last_inversion
    assert cold_stats.unet_passes["inversion"] == len(frames) * params.steps  # nothing inverted twice
    _, warm_stats, warm = run(engine, frames, params)
    assert warm_stats.inversion_cached
    cold_preview = cold[first_preview]
    warm_preview = next(e for e in warm if isinstance(e, Preview))
    assert cold_preview.step == warm_preview.step == 0
    assert cold_preview.frame_indices == warm_preview.frame_indices
    for a, b in zip(cold_preview.images, warm_preview.images):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
