"""Nearest-neighbour fields at the first self-attention layer follow real motion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.tokenflow.helpers import clip_frames
from tokenflow.attention import nearest_tokens
from tokenflow.frames import encode_frames

FIRST_LAYER = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"


def first_layer_features(engine, latents: torch.Tensor, t: int = 261) -> torch.Tensor:
    unet = engine.model.unet
    captured = []
    handle = unet.get_submodule(FIRST_LAYER).register_forward_pre_hook(
        lambda module, args, kwargs: captured.append(args[0] if args else kwargs["hidden_states"]), with_kwargs=True
    )
    try:
        text = torch.zeros(latents.shape[0], 77, unet.config.cross_attention_dim)
        with torch.no_grad():
            unet(latents, t, encoder_hidden_states=text)
    finally:
        handle.remove()
    return captured[0]


def shifted_fraction(features_a: torch.Tensor, features_b: torch.Tensor, height: int, width: int, shift: int,
                     margin: int = 2) -> float:
    """Share of interior tokens of b whose nearest token in a sits `shift` columns to the left."""
    match = nearest_tokens(features_b, features_a).view(height, width)
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    expected = rows * width + (cols - shift)
    interior = (cols >= shift + margin) & (cols < width - margin) & (rows >= margin) & (rows < height - margin)
    return float((match == expected)[interior].float().mean())


@pytest.fixture(scope="module")
def frame(shipped_clip):
    return clip_frames(shipped_clip, 40, 1)[0]


@pytest.mark.parametrize("shift", [1, 2])
def test_latent_shift_is_recovered_at_the_first_layer(tiny_engine, frame, shift):
    model = tiny_engine.model
    latent = encode_frames(model.vae, [frame], (128, 128), model.vae_scale)
    shifted = torch.roll(latent, shifts=shift, dims=-1)
    features = first_layer_features(tiny_engine, torch.cat([latent, shifted]))
    assert shifted_fraction(features[0], features[1], 16, 16, shift) >= 0.99


def test_image_shift_is_recovered_after_re_encoding(tiny_engine, frame):
    model = tiny_engine.model
    crop = frame[:, :136]  # 176 wide source; two 128-wide views 8 pixels apart
    moved = np.ascontiguousarray(frame[:, 8:144])
    latents = encode_frames(model.vae, [crop, moved], (136, 144), model.vae_scale)
    features = first_layer_features(tiny_engine, latents)
    h, w = latents.shape[-2:]
    # The content moved left by 8 pixels = 1 latent pixel: b's token at col j is a's at col j+1.
    match_fraction = shifted_fraction(features[0], features[1], h, w, shift=-1)
    assert match_fraction >= 0.80
