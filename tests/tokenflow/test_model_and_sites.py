"""Model loading by folder/hub id/checkpoint, site resolution, working size."""

from __future__ import annotations

import pytest

from tokenflow.errors import InvalidInput, ModelNotFound, UnsupportedModel
from tokenflow.frames import working_size
from tokenflow.model import load_model
from tokenflow.sites import find_sites


def test_sites_resolve_by_name_on_sd_layout(tiny_engine):
    sites = find_sites(tiny_engine.model.unet)
    assert len(sites.self_attention) == 16
    assert sites.pnp_conv == "up_blocks.1.resnets.1.conv2"
    assert "up_blocks.1.attentions.1.transformer_blocks.0.attn1" in sites.pnp_attention
    assert "up_blocks.1.attentions.0.transformer_blocks.0.attn1" not in sites.pnp_attention
    assert len(sites.pnp_attention) == 8


def test_unknown_architecture_gets_a_clear_error():
    from diffusers import UNet2DConditionModel

    three_level = UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 32, 64), layers_per_block=1, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
        attention_head_dim=8,
    )
    with pytest.raises(UnsupportedModel, match="SD 1.5 or SD 2.1"):
        find_sites(three_level)


def test_missing_local_folder(tmp_path):
    with pytest.raises(ModelNotFound, match="does not exist"):
        load_model(str(tmp_path / "nope" / "model"), device="cpu")


def test_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ModelNotFound, match="not a diffusers Stable Diffusion model"):
        load_model(str(tmp_path), device="cpu")


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(ModelNotFound, match="does not exist"):
        load_model(str(tmp_path / "model.safetensors"), device="cpu")


def test_hub_id_offline_says_how_to_get_a_model():
    # HF_HUB_OFFLINE is set for the whole test run (tests/conftest.py).
    with pytest.raises(ModelNotFound, match="make-tiny"):
        load_model("nobody-here/not-a-model", device="cpu")


def test_gpu_vae_runs_fp32_unless_marked_fp16_safe_and_never_bf16():
    import torch

    from tokenflow.devices import choose_dtypes

    gpu = torch.device("cuda")
    assert choose_dtypes(gpu, vae_force_upcast=True) == (torch.float16, torch.float32)
    assert choose_dtypes(gpu, vae_force_upcast=False) == (torch.float16, torch.float16)
    assert choose_dtypes(torch.device("cpu")) == (torch.float32, torch.float32)


def test_local_folder_loads_with_sd_scheduler_settings(tiny_model_dir):
    model = load_model(str(tiny_model_dir), device="cpu")
    assert model.prediction_type == "epsilon"
    assert model.vae_scale != 0.18215  # the tiny VAE gets its own unit-variance factor


@pytest.mark.parametrize(
    "size, short, expected",
    [((640, 272), 512, (1216, 512)), ((176, 144), 512, (640, 512)), ((1280, 720), 512, (960, 512)),
     ((720, 1280), 512, (512, 960)), ((512, 512), 512, (512, 512)), ((640, 272), 64, (192, 64))],
)
def test_working_size_pads_up_to_multiples_of_64(size, short, expected):
    # The picture inside keeps its aspect (tests/tokenflow/test_aspect.py); the sides round up.
    assert working_size(*size, short) == expected


def test_working_size_too_small():
    with pytest.raises(InvalidInput, match="too small"):
        working_size(640, 480, 32)
