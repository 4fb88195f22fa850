"""SDXL's text conditioning, as diffusers' StableDiffusionXLPipeline builds it.

SDXL's UNet reads, besides the token embeddings, a pooled text embedding and six
"time ids" (original size, crop top-left, target size) through `added_cond_kwargs`.
Every UNet call of the method (inversion, keyframes, propagation, per-frame) passes
them, per branch: the source branch gets the inversion prompt's pooled embedding,
the edited branches the negative prompt's and the prompt's, all with the same ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Added:
    """One prompt's extra UNet inputs (batch of one)."""

    text_embeds: torch.Tensor  # (1, P): text_encoder_2's pooled, projected embedding
    time_ids: torch.Tensor  # (1, 6)


def time_ids(working_size: tuple[int, int], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(height, width, crop top, crop left, height, width): the pipeline's default for an
    uncropped picture generated at its own size, which is what every working frame is."""
    width, height = working_size
    return torch.tensor([[height, width, 0, 0, height, width]], dtype=dtype, device=device)


@torch.no_grad()
def encode(model: Any, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden (1, 77, D1 + D2), pooled (1, P)) for one prompt: both encoders' penultimate
    hidden states side by side, and the second encoder's pooled output (clip_skip None)."""
    hidden: list[torch.Tensor] = []
    pooled = None
    for tokenizer, encoder in ((model.tokenizer, model.text_encoder), (model.tokenizer_2, model.text_encoder_2)):
        ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                        return_tensors="pt").input_ids.to(model.device)
        output = encoder(ids, output_hidden_states=True)
        pooled = output[0]  # the last encoder's (CLIPTextModelWithProjection) projected embedding
        hidden.append(output.hidden_states[-2])
    assert pooled is not None and pooled.ndim == 2, "SDXL's second text encoder gives a pooled embedding"
    return torch.cat(hidden, dim=-1).to(model.unet_dtype), pooled.to(model.unet_dtype)


def added_kwargs(parts: Sequence[Added] | None, count: int) -> dict[str, Any]:
    """The UNet's keyword arguments for a batch of `count` frames per part, parts stacked in
    order ([source | uncond | cond] for the edit); nothing for SD 1.x/2.x (parts None)."""
    if not parts:
        return {}
    return {"added_cond_kwargs": {
        "text_embeds": torch.cat([p.text_embeds.expand(count, -1) for p in parts]),
        "time_ids": torch.cat([p.time_ids.expand(count, -1) for p in parts]),
    }}
