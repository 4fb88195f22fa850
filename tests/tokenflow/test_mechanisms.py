"""Each mechanism of the method, checked exactly where it acts (tiny model, hooks on the sites).

Random weights hide a broken mechanism from output-level tests; these look at the UNet's
own inputs, self-attention inputs/outputs, attention-kernel arguments and the PnP conv,
through `Probe` (tests/tokenflow/probe.py), and hold them against what the method says.
Each runs on both model layouts (`family_engine`: SD 1.x/2.x and SDXL).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.make_params import make_params
from tests.tokenflow.helpers import relative_error
from tests.tokenflow.probe import conditioning, probed_run
from tokenflow.attention import KEYFRAMES, PER_FRAME, PROPAGATE
from tokenflow.model import encode_prompt
from tokenflow.sdxl import added_kwargs

PARAMS = make_params(prompt="a watercolor painting", negative_prompt="blurry", inversion_prompt="a man on the phone",
                     steps=5, seed=3, kf_interval=2, pnp_attn_t=0.5, pnp_f_t=0.7)


def differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    return relative_error(a, b) > 1e-3


# --- joint attention -------------------------------------------------------------------


def test_keyframes_attend_jointly_in_the_edited_branches_only(family_engine):
    """Changing keyframe 2 changes keyframe 0's uncond/cond self-attention output in every
    layer, and leaves keyframe 0's source branch exactly as it was."""
    params = dataclasses.replace(PARAMS, steps=1, kf_interval=1)  # 3 keyframes, one joint pass, no PnP
    _, first, _, inverted = probed_run(family_engine, params, n_frames=3)
    changed = {t: x.clone() for t, x in inverted.items()}
    for x in changed.values():
        x[2] = torch.randn(x[2].shape, generator=torch.Generator().manual_seed(9))
    _, second, _, _ = probed_run(family_engine, params, inverted=changed)
    (a,), (b,) = first.at(0, KEYFRAMES), second.at(0, KEYFRAMES)
    assert a.frames == b.frames == [0, 1, 2]
    for name, layer_a in a.layers.items():
        out_a, out_b = layer_a.output, b.layers[name].output
        assert torch.allclose(a.branch(out_a, 0)[0], b.branch(out_b, 0)[0], rtol=0, atol=1e-6), name
        for branch in (1, 2):
            assert differs(a.branch(out_a, branch)[0], b.branch(out_b, branch)[0]), (name, branch)


# --- PnP injection -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenflow_run(family_engine):
    # 7 frames, keyframe interval 2: 4 keyframes in groups of at most 3 (with anchors),
    # propagation in between; 5 steps with Q/K injection for int(0.5*5) = 2 and conv
    # injection for int(0.7*5) = 3 steps (the public code's rule).
    params = dataclasses.replace(PARAMS, max_joint_keyframes=3, batch_size=2)
    return probed_run(family_engine, params, n_frames=7)


@pytest.fixture(scope="module")
def per_frame_run(family_engine):
    return probed_run(family_engine, dataclasses.replace(PARAMS, method="per-frame", batch_size=2), n_frames=3)


@pytest.mark.parametrize("run", ["tokenflow_run", "per_frame_run"])
def test_pnp_conv_features_are_the_source_branchs_while_on(run, request, family_engine):
    loop, probe, _, _ = request.getfixturevalue(run)
    injected = set()
    for call in probe.calls:
        source = call.branch(call.conv, 0)
        same = [torch.equal(call.branch(call.conv, b), source) for b in (1, 2)]
        if all(same):
            injected.add(call.step)
        else:
            assert not any(same) and all(differs(call.branch(call.conv, b), source) for b in (1, 2))
    assert injected == set(range(int(0.7 * 5))) == {0, 1, 2}


@pytest.mark.parametrize("run", ["tokenflow_run", "per_frame_run"])
def test_pnp_queries_and_keys_are_the_source_branchs_at_the_injected_layers_while_on(run, request, family_engine):
    loop, probe, _, _ = request.getfixturevalue(run)
    sites = family_engine.sites
    checked = {True: 0, False: 0}
    for call in probe.calls:
        if call.mode == PROPAGATE:
            continue  # no attention is computed there
        injecting = call.step < int(0.5 * 5)
        for name, layer in call.layers.items():
            q, k, v = layer.branch_qkv(call.n)
            at_site = name in sites.pnp_attention
            for b in (1, 2):
                if injecting and at_site:
                    assert torch.equal(q[b], q[0]) and torch.equal(k[b], k[0]), (call.step, name)
                    assert differs(v[b], v[0]), "values are not injected"
                    checked[True] += 1
                elif differs(call.branch(layer.input, b), call.branch(layer.input, 0)):
                    # Not injected: the branch's own queries and keys. (At step 0 the branches'
                    # inputs can coincide before the first cross-attention: nothing to tell apart.)
                    assert differs(q[b], q[0]) and differs(k[b], k[0]), (call.step, name)
                    checked[False] += 1
    sites_count = len(sites.pnp_attention)  # SD: 8 layers; SDXL: several per transformer
    assert checked[True] >= 2 * sites_count * 2 and checked[False] >= 2 * sites_count * 3  # both steps' sites, the rest


def test_source_branch_is_the_inverted_latent_under_the_inversion_prompt(tokenflow_run, family_engine):
    """The UNet's inputs per branch, and the source branch's output equal a plain UNet call on
    the inverted latent with the inversion prompt (no joint attention, no injection into it)."""
    loop, probe, _, inverted = tokenflow_run
    model = family_engine.model
    text = conditioning(model, loop.params)
    assert differs(text.source, text.prompt) and differs(text.source, text.negative)
    checked = 0
    for call in probe.calls:
        t = loop.schedule.timesteps[call.step]
        assert torch.equal(call.branch(call.sample, 0), inverted[t][call.frames])
        assert torch.equal(call.branch(call.sample, 1), call.branch(call.sample, 2))
        for b, expected in enumerate((text.source, text.negative, text.prompt)):
            assert torch.equal(call.branch(call.text, b), expected.expand(call.n, -1, -1))
        if call.mode == KEYFRAMES:
            with torch.no_grad():  # processors are removed again: a plain diffusers UNet
                plain = model.unet(inverted[t][call.frames], t, encoder_hidden_states=call.branch(call.text, 0),
                                   **added_kwargs(text.added and text.added[:1], call.n)).sample
            assert torch.allclose(call.branch(call.output, 0), plain, rtol=0, atol=1e-5)
            checked += 1
    assert checked >= 5


# --- guidance, DDIM alignment and prompts: against diffusers' own sampler --------------------


def test_per_frame_without_pnp_is_diffusers_ddim_with_classifier_free_guidance(family_engine):
    from diffusers import DDIMScheduler

    params = dataclasses.replace(PARAMS, method="per-frame", pnp_attn_t=0.0, pnp_f_t=0.0, steps=4, batch_size=2)
    _, _, edited, inverted = probed_run(family_engine, params, n_frames=3)

    model = family_engine.model
    if model.family.name == "sdxl":
        assert relative_error(edited, sdxl_pipeline_latents(model, params, inverted)) < 1e-4
        return
    scheduler = DDIMScheduler.from_config(model.scheduler.config)
    scheduler.set_timesteps(params.steps)
    negative, prompt = encode_prompt(model, params.negative_prompt), encode_prompt(model, params.prompt)
    latents = inverted[int(scheduler.timesteps[0])].clone()
    with torch.no_grad():
        for t in scheduler.timesteps:
            uncond = model.unet(latents, t, encoder_hidden_states=negative.expand(3, -1, -1)).sample
            cond = model.unet(latents, t, encoder_hidden_states=prompt.expand(3, -1, -1)).sample
            eps = uncond + params.guidance * (cond - uncond)
            latents = scheduler.step(eps, t, latents).prev_sample
    assert relative_error(edited, latents) < 1e-4


def sdxl_pipeline_latents(model, params, inverted) -> torch.Tensor:
    """diffusers' own StableDiffusionXLPipeline from the same parts, DDIM on the same schedule,
    started from the same latents: prompts, pooled embeddings, size ids and CFG as it builds them."""
    from diffusers import DDIMScheduler, StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(
        vae=model.vae, text_encoder=model.text_encoder, text_encoder_2=model.text_encoder_2,
        tokenizer=model.tokenizer, tokenizer_2=model.tokenizer_2, unet=model.unet,
        scheduler=DDIMScheduler.from_config(model.scheduler.config), add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    start = inverted[max(inverted)]
    size = start.shape[-1] * 8
    return pipe(params.prompt, negative_prompt=params.negative_prompt, num_inference_steps=params.steps,
                guidance_scale=params.guidance, latents=start.clone(), num_images_per_prompt=start.shape[0],
                height=size, width=size, output_type="latent").images


# --- propagation -------------------------------------------------------------------------------


def two_sided(frame: int, keyframes: list[int]) -> tuple[int, int, float]:
    """(keyframe before, keyframe after, weight of before), written independently of the engine."""
    before = max((k for k in keyframes if k <= frame), default=min(keyframes))
    after = min((k for k in keyframes if k >= frame), default=max(keyframes))
    if before == after:
        return before, after, 1.0
    return before, after, (after - frame) / (after - before)


def test_propagation_plan_is_the_two_sided_neighbours_of_each_steps_keyframes(tokenflow_run):
    loop, probe, _, _ = tokenflow_run
    assert len({tuple(k) for k in loop.keyframe_history}) > 1  # keyframes were re-drawn
    for step, keyframes in enumerate(loop.keyframe_history):
        keyframe_calls = probe.at(step, KEYFRAMES)
        assert set(keyframes) == {f for c in keyframe_calls for f in c.frames}
        propagated = []
        for call in probe.at(step, PROPAGATE):
            for frame, where in zip(call.frames, call.plan):
                before, after, weight = two_sided(frame, keyframes)
                assert (where.before, where.after) == (before, after), (step, frame)
                assert where.weight_before == pytest.approx(weight, abs=1e-12)
                propagated.append(frame)
        assert sorted(propagated) == [f for f in range(loop.n_frames) if f not in keyframes]


def test_propagated_tokens_blend_keyframe_tokens_matched_on_source_features(tokenflow_run):
    """Every non-keyframe's self-attention output is w * T_before[nn] + (1 - w) * T_after[nn],
    with T the keyframes' outputs of the same branch from the group that owns them, and nn
    the cosine-nearest token found on the *source* branch's features, at every layer and step."""
    loop, probe, _, _ = tokenflow_run
    checked = 0
    for step, keyframes in enumerate(loop.keyframe_history):
        owner = {}  # keyframe -> (its joint-pass call, its position there)
        groups = loop.group_history[step]
        assert len(groups) > 1 and any(g.anchors for g in groups)  # the bounded groups are exercised
        for group, call in zip(groups, probe.at(step, KEYFRAMES), strict=True):
            assert tuple(call.frames) == group.members
            for f in group.owned:
                owner[f] = (call, call.frames.index(f))
        for call in probe.at(step, PROPAGATE):
            for j, frame in enumerate(call.frames):
                before, after, weight = two_sided(frame, keyframes)
                for name, layer in call.layers.items():
                    features = call.branch(layer.input, 0)[j]
                    expected = 0
                    for kf, w in ((before, weight), (after, 1 - weight)):
                        if w == 0:
                            continue
                        kf_call, i = owner[kf]
                        kf_layer = kf_call.layers[name]
                        reference = kf_call.branch(kf_layer.input, 0)[i]
                        cosine = (features / features.norm(dim=-1, keepdim=True)) @ (
                            reference / reference.norm(dim=-1, keepdim=True)).T
                        match = cosine.argmax(dim=-1)
                        tokens = torch.stack([kf_call.branch(kf_layer.output, b)[i] for b in range(3)])
                        expected = expected + w * tokens[:, match]
                    got = torch.stack([call.branch(layer.output, b)[j] for b in range(3)])
                    assert torch.allclose(got, expected, rtol=0, atol=1e-5), (step, frame, name)
                    checked += 1
    layers = len(loop.state.sites.self_attention)  # SD: 16; SDXL: several per transformer
    assert checked == layers * 3 * 5  # every self-attention layer, every non-keyframe, every step


# --- fixed batch shapes (the opt-in compile path) -------------------------------------------


@pytest.mark.parametrize("method", ["tokenflow", "per-frame"])
def test_padding_batches_to_one_shape_changes_nothing(family_engine, method):
    params = dataclasses.replace(PARAMS, method=method, steps=2, batch_size=3, max_joint_keyframes=3)
    _, plain, plain_latents, inverted = probed_run(family_engine, params, n_frames=7)
    _, padded, padded_latents, _ = probed_run(family_engine, params, inverted=inverted, pad_batches=True)
    assert relative_error(padded_latents, plain_latents) < 1e-5
    batch_calls = [c.n for c in padded.calls if c.mode in (PROPAGATE, PER_FRAME)]
    assert set(batch_calls) == {3} and {c.n for c in plain.calls if c.mode in (PROPAGATE, PER_FRAME)} != {3}
