"""Model families the method fits, told apart by their configuration before any weights load.

A family is what changes between Stable Diffusion 1.x/2.x and SDXL for TokenFlow: the
pipeline class that loads it, the decoder levels that hold self-attention (where the
PnP sites are, tokenflow/sites.py), the text conditioning (SDXL: two text encoders,
pooled embedding, size/crop ids; tokenflow/sdxl.py) and its native working size.
Everything else (DDIM, joint attention, propagation) is the same code for both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenflow.errors import UnsupportedModel

WHAT_WORKS = ("Stable Diffusion 1.x/2.x (e.g. SD 1.5, SD 2.1) and SDXL base 1.0, or a fine-tune of one, "
              "as a hub id, a diffusers folder or a single .safetensors file")


@dataclass(frozen=True)
class Family:
    name: str  # "sd" or "sdxl": what `models list` shows and LoRAs are checked against
    label: str
    pipeline_class: str  # the diffusers pipeline that loads it
    native_short_side: int  # the working short side it was trained at (--size 0)
    up_blocks: int  # decoder levels of its UNet
    attention_up_blocks: tuple[int, ...]  # the decoder levels holding (cross-)attention, coarse to fine
    # The tiny autoencoder that decodes its previews (tokenflow/preview_decoder.py): each
    # family's VAE has its own latent space, so one family's never decodes the other's.
    preview_repo: str
    preview_label: str


SD = Family("sd", "Stable Diffusion 1.x/2.x", "StableDiffusionPipeline", 512, 4, (1, 2, 3),
            "madebyollin/taesd", "TAESD")
SDXL = Family("sdxl", "SDXL", "StableDiffusionXLPipeline", 1024, 3, (0, 1), "madebyollin/taesdxl", "TAESDXL")
FAMILIES = {f.name: f for f in (SD, SDXL)}


def family_of_tiny_autoencoder(name: str) -> Family:
    """Which family a tiny autoencoder decodes, from its hub id or registered name.

    TAESD's and TAESDXL's files are alike (the same AutoencoderTiny configuration, the
    same tensor names), so only the name tells them apart: "xl" in it (madebyollin/taesdxl,
    `models add DIR --name my-taesdxl`) is SDXL's, anything else SD 1.x/2.x's."""
    return SDXL if "xl" in name.lower() else SD

# Pipelines whose denoiser is a transformer, not a UNet: no decoder with convolution and
# self-attention sites for PnP to inject into, so the method does not fit them.
_TRANSFORMER_PIPELINES = ("StableDiffusion3", "Flux", "PixArt", "Sana", "HunyuanDiT", "Lumina", "AuraFlow",
                          "CogView", "Wan", "LTX", "Mochi", "QwenImage", "HiDream", "Chroma")


def refuse(what: str) -> UnsupportedModel:
    return UnsupportedModel(f"{what}. TokenFlow here works with {WHAT_WORKS}.")


def family_of_unet_config(config: Mapping[str, Any]) -> Family:
    """SD or SDXL from a UNet's configuration (config.json); refuses the refiner and others."""
    addition = config.get("addition_embed_type")
    if addition is None:
        return SD
    if addition == "text_time":
        # The refiner conditions on an aesthetic score instead of the target size and has a
        # four-level UNet without the first text encoder: it refines SDXL's output, it does not edit.
        if len(tuple(config.get("down_block_types") or ())) != 3:
            raise refuse("This is an SDXL refiner (it conditions on an aesthetic score and refines SDXL's "
                         "output); it cannot edit alone: use SDXL base 1.0 or a fine-tune of it")
        return SDXL
    raise refuse(f"This UNet has extra conditioning of type {addition!r} that TokenFlow does not know")


def family_of_pipeline_index(index: Mapping[str, Any]) -> Family:
    """The family from a diffusers folder's model_index.json; refuses transformer denoisers and the refiner."""
    name = str(index.get("_class_name", ""))
    if "transformer" in index or any(name.startswith(p) for p in _TRANSFORMER_PIPELINES):
        raise refuse(f"{name or 'This model'} denoises with a transformer, not a UNet: TokenFlow's PnP and "
                     "self-attention sites live in a UNet's decoder")
    if index.get("requires_aesthetics_score") or ("text_encoder_2" in index and not _present(index, "text_encoder")):
        raise refuse("This is an SDXL refiner (it refines SDXL's output and has no first text encoder); it "
                     "cannot edit alone: use SDXL base 1.0 or a fine-tune of it")
    if "text_encoder_2" in index or "XL" in name:
        return SDXL
    return SD


def _present(index: Mapping[str, Any], key: str) -> bool:
    value = index.get(key)
    return isinstance(value, (list, tuple)) and value[0] is not None


def family_of_folder(path: Path) -> Family:
    return family_of_pipeline_index(json.loads((path / "model_index.json").read_text()))


# Keys that only a checkpoint of that family holds (the original Stability layouts, as
# single .safetensors files are shared).
_CHECKPOINT_MARKS: tuple[tuple[str, str | None], ...] = (
    ("conditioner.embedders.1.", "sdxl"),
    ("model.diffusion_model.joint_blocks.", None),  # SD3
    ("double_blocks.", None),  # Flux
    ("model.diffusion_model.double_blocks.", None),
    ("transformer_blocks.0.ff_context.", None),  # SD3/Flux in diffusers naming
)


def family_of_checkpoint(path: Path) -> Family:
    """SD or SDXL from a single checkpoint's tensor names (read without loading the weights)."""
    if path.suffix.lower() != ".safetensors":
        return SD  # a pickled .ckpt is not opened before diffusers loads it; SD is what those are
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())
    return family_of_checkpoint_keys(keys, path.name)


def family_of_checkpoint_keys(keys: list[str], name: str) -> Family:
    """SD or SDXL from a checkpoint's tensor names; refuses SD3/Flux and the SDXL refiner.
    (`tokenflow models add` reads the names from the file's header, without torch.)"""
    for mark, family in _CHECKPOINT_MARKS:
        if any(k.startswith(mark) for k in keys):
            if family is None:
                raise refuse(f"{name} holds a transformer denoiser (SD3 or Flux), not a UNet")
            return FAMILIES[family]
    if any(k.startswith("conditioner.") for k in keys):  # SDXL's layout without its first text encoder
        raise refuse(f"{name} looks like an SDXL refiner; it cannot edit alone: use SDXL base 1.0")
    return SD


def native_short_side(family: Family, requested: int) -> int:
    """The working short side: `requested`, or the family's own size when it is 0."""
    return requested if requested > 0 else family.native_short_side
