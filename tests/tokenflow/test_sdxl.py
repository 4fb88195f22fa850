"""The SDXL family: how it is recognised and refused, its sites, size, precision and conditioning."""

from __future__ import annotations

import json

import pytest
import torch

from tests.make_params import make_params
from tokenflow.errors import UnsupportedModel
from tokenflow.family import SD, SDXL, family_of_pipeline_index, family_of_unet_config
from tokenflow.model import load_model
from tokenflow.sites import PNP_ATTN_BLOCKS, PNP_CONV_BLOCK, attention_stride, find_sites, pnp_blocks


def test_the_site_rule_gives_the_public_sd_sites():
    assert pnp_blocks(SD) == (PNP_CONV_BLOCK, PNP_ATTN_BLOCKS)


def test_sdxl_sites_are_its_first_attention_decoder_level_by_the_same_rule(tiny_sdxl_engine):
    unet = tiny_sdxl_engine.model.unet
    sites = find_sites(unet)
    every_attn1 = [n for n, _ in unet.named_modules() if n.endswith(".attn1")]
    assert sites.self_attention == tuple(every_attn1) and len(every_attn1) == 22  # several layers per transformer
    assert sites.pnp_conv == "up_blocks.0.resnets.1.conv2"
    expected = {f"up_blocks.{b}.attentions.{a}.transformer_blocks.{layer}.attn1"
                for b, a in ((0, 1), (0, 2), (1, 0), (1, 1), (1, 2)) for layer in (0, 1)}
    assert sites.pnp_attention == expected
    assert attention_stride(unet) == 2  # its finest attention is at half the latent size


def test_sdxl_works_at_1024_by_default_and_keeps_its_vae_in_float32(tiny_sdxl_engine, tiny_engine):
    params = make_params(prompt="x")
    assert params.short_side == 0  # the model's own size
    assert tiny_engine._short_side(params) == 512 and tiny_sdxl_engine._short_side(params) == 1024
    assert tiny_sdxl_engine._short_side(make_params(prompt="x", short_side=768)) == 768
    assert tiny_sdxl_engine.model.vae.config.force_upcast and tiny_sdxl_engine.model.family is SDXL


def test_every_unet_call_gets_the_pooled_text_and_size_ids(tiny_sdxl_engine, shipped_clip):
    from tests.tokenflow.helpers import clip_frames

    seen = []
    unet = tiny_sdxl_engine.model.unet
    handle = unet.register_forward_pre_hook(lambda m, a, kw: seen.append(kw.get("added_cond_kwargs")), with_kwargs=True)
    try:
        frames = clip_frames(shipped_clip, 0, 3)
        tiny_sdxl_engine.edit(frames, 3, make_params(prompt="ink", steps=2, kf_interval=2, short_side=64))
    finally:
        handle.remove()
    assert seen and all(a is not None for a in seen)
    for added in seen:
        ids = added["time_ids"]
        # 176x144 at short side 64: 78x64 of picture, reflect-padded to 128x64, which is what the UNet sees
        assert ids.shape[1] == 6 and torch.equal(ids[0], torch.tensor([64.0, 128, 0, 0, 64, 128]))
        assert added["text_embeds"].shape[0] == ids.shape[0]


def test_each_branch_gets_its_own_prompts_pooled_text_with_several_prompts(tiny_sdxl_engine, shipped_clip):
    """The two-call split: the source branch's call carries the inversion prompt's pooled
    embedding, each [uncond | cond] call the negative's and its own prompt's, row by row."""
    from tests.tokenflow.helpers import clip_frames
    from tokenflow.model import added_conditioning

    engine = tiny_sdxl_engine
    variants = ["snow", "oil paint"]
    params = make_params(prompt="ink", inversion_prompt="a street", steps=2, kf_interval=2, short_side=64,
                         variants=variants)
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def seen(module, args, kwargs):
        calls.append((kwargs["encoder_hidden_states"], kwargs["added_cond_kwargs"]["text_embeds"]))

    handle = engine.model.unet.register_forward_pre_hook(seen, with_kwargs=True)
    try:
        engine.edit(clip_frames(shipped_clip, 0, 3), 3, params)
    finally:
        handle.remove()
    texts = [params.inversion_prompt, params.negative_prompt, params.prompt, *variants]
    size = (128, 64)  # 176x144 at short side 64, padded
    known = [(engine._prompt(t)[0], added_conditioning(engine.model, t, size).text_embeds[0]) for t in texts]  # pyright: ignore
    used = set()
    for hidden, pooled in calls:
        for row in range(hidden.shape[0]):
            match = [i for i, (h, _) in enumerate(known) if torch.equal(hidden[row], h)]
            assert len(match) == 1, "every row's text is one of the prompts"
            assert torch.equal(pooled[row], known[match[0]][1]), f"row of {texts[match[0]]!r} got another pooled text"
            used.add(match[0])
    assert used == set(range(len(texts)))  # every prompt reached the UNet


# --- what is refused, with what works named --------------------------------------------------


@pytest.mark.parametrize("index, words", [
    ({"_class_name": "StableDiffusion3Pipeline", "transformer": ["diffusers", "SD3Transformer2DModel"]}, "transformer"),
    ({"_class_name": "FluxPipeline", "transformer": ["diffusers", "FluxTransformer2DModel"]}, "transformer"),
    ({"_class_name": "StableDiffusionXLImg2ImgPipeline", "text_encoder": [None, None],
      "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "requires_aesthetics_score": True}, "refiner"),
])
def test_transformer_denoisers_and_the_refiner_are_refused_naming_what_works(index, words):
    with pytest.raises(UnsupportedModel, match=words) as caught:
        family_of_pipeline_index(index)
    assert "SDXL base 1.0" in str(caught.value) and "SD 1.5" in str(caught.value)


def test_refiner_unet_config_is_refused():
    refiner = {"addition_embed_type": "text_time", "addition_time_embed_dim": 256,
               "projection_class_embeddings_input_dim": 2560, "cross_attention_dim": 1280,
               "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]}
    with pytest.raises(UnsupportedModel, match="refiner"):
        family_of_unet_config(refiner)
    assert family_of_unet_config({**refiner, "down_block_types": ["DownBlock2D"] * 3}) is SDXL


def test_an_sd3_shaped_folder_is_refused_before_loading(tmp_path):
    (tmp_path / "transformer").mkdir()
    (tmp_path / "unet").mkdir()  # even with a unet folder beside it
    (tmp_path / "model_index.json").write_text(json.dumps(
        {"_class_name": "StableDiffusion3Pipeline", "transformer": ["diffusers", "SD3Transformer2DModel"]}))
    with pytest.raises(UnsupportedModel, match="transformer"):
        load_model(str(tmp_path), device="cpu")


def test_a_flux_checkpoint_file_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "flux.safetensors"
    save_file({"double_blocks.0.img_attn.qkv.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(UnsupportedModel, match="transformer"):
        load_model(str(path), device="cpu")


def test_a_refiner_folder_is_refused(tiny_sdxl_model_dir, tmp_path):
    import shutil

    refiner = tmp_path / "refiner"
    shutil.copytree(tiny_sdxl_model_dir, refiner)
    index = json.loads((refiner / "model_index.json").read_text())
    index.update(_class_name="StableDiffusionXLImg2ImgPipeline", text_encoder=[None, None], tokenizer=[None, None],
                 requires_aesthetics_score=True)
    (refiner / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(UnsupportedModel, match="refiner"):
        load_model(str(refiner), device="cpu")
