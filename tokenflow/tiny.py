"""Randomly initialised models with Stable Diffusion's layout.

`make_tiny_pipeline_dir` builds, fully offline, a ~2.5 M parameter pipeline whose
UNet has SD 1.x/2.x's block structure (so every injection site resolves by the same
names as on real SD) and saves it as a normal diffusers folder. Its output is NOISE:
it exists to exercise the machinery in tests and on machines without real weights.

`sd21_base_random_unet` instantiates SD 2.1-base's real UNet configuration with
random weights: the real compute cost, for timing on a GPU.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

TINY_MARKER = "tokenflow_tiny_model.json"

# SD 1.x/2.x's UNet blocks: three cross-attention levels and one plain, mirrored on the
# way up. Shared by the tiny model and the SD 2.1-base shape so injection sites resolve
# by the same names on both. Config dicts (as diffusers' config.json) are Any-valued.
SD_BLOCK_LAYOUT: dict[str, Any] = dict(
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
)

# The CLIP tokenizer's byte-to-unicode table: printable bytes map to themselves,
# the rest to code points above 255, so every byte has a visible character.
def _byte_alphabet() -> list[str]:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    chars: list[str] = []
    extra = 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def write_character_tokenizer(directory: Path, max_length: int = 77) -> None:
    """A CLIP tokenizer with a character-level vocabulary and no merges, written locally."""
    directory.mkdir(parents=True, exist_ok=True)
    alphabet = _byte_alphabet()
    vocab: dict[str, int] = {}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    for ch in alphabet:
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (directory / "special_tokens_map.json").write_text(
        json.dumps({k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")})
    )


def _tiny_unet(cross_attention_dim: int):
    from diffusers import UNet2DConditionModel  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private

    return UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        **SD_BLOCK_LAYOUT,
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=2,
        norm_num_groups=8,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
    )


def _sd_vae(block_out_channels: tuple[int, ...], layers_per_block: int, norm_num_groups: int, sample_size: int,
            scaling_factor: float = 0.18215):
    from diffusers import AutoencoderKL  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private

    # Four blocks -> three 2x down-samplings -> 8x, as SD's VAE. diffusers annotates the
    # per-block tuples as Tuple[str] / Tuple[int] (one element) where it means any length.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,  # pyright: ignore[reportArgumentType]
        up_block_types=("UpDecoderBlock2D",) * 4,  # pyright: ignore[reportArgumentType]
        block_out_channels=block_out_channels,  # pyright: ignore[reportArgumentType]
        layers_per_block=layers_per_block,
        latent_channels=4,
        norm_num_groups=norm_num_groups,
        sample_size=sample_size,
        scaling_factor=scaling_factor,
    )


def _save_pipeline(directory: Path, vae, text_encoder, tokenizer, unet, warning: str) -> Path:
    from diffusers import StableDiffusionPipeline  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private

    # diffusers annotates `scheduler` with an Enum of scheduler names (it takes an instance)
    # and the safety parts as required (None turns them off, as requires_safety_checker says).
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=_sd_scheduler(),  # pyright: ignore[reportArgumentType]
        safety_checker=None,  # pyright: ignore[reportArgumentType]
        feature_extractor=None,  # pyright: ignore[reportArgumentType]
        requires_safety_checker=False,
    )
    pipe.save_pretrained(directory, safe_serialization=True)
    (directory / TINY_MARKER).write_text(json.dumps({"warning": warning}))
    return directory


def _tiny_text_encoder(vocab_size: int, hidden: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    return CLIPTextModel(config)


def _sd_scheduler():
    from diffusers import DDIMScheduler  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private

    # Stable Diffusion's own scheduler settings.
    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
        num_train_timesteps=1000,
    )


def _structured_images(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Smooth random images in [-1, 1] with natural-image-like low-frequency content."""
    coarse = torch.rand(count, 3, 8, 8, generator=generator) * 2 - 1
    smooth = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    fine = (torch.rand(count, 3, size, size, generator=generator) * 2 - 1) * 0.1
    return (smooth + fine).clamp(-1, 1)


@torch.no_grad()
def _unit_variance_scaling(vae, generator: torch.Generator) -> float:
    """A scaling factor that makes encoded images unit-variance, as 0.18215 does for SD's trained VAE."""
    images = _structured_images(8, 64, generator)
    latents = vae.encode(images).latent_dist.mean
    return float(1.0 / latents.std().clamp_min(1e-6))


def make_tiny_pipeline_dir(directory: str | Path, seed: int = 0) -> Path:
    """Build and save the tiny random SD-layout pipeline. Offline; about 10 MB on disk."""
    from transformers import CLIPTokenizer

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    tokenizer_dir = directory / "tokenizer"
    write_character_tokenizer(tokenizer_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_dir)
    text_encoder = _tiny_text_encoder(len(tokenizer), hidden=32)
    unet = _tiny_unet(cross_attention_dim=32)
    vae = _sd_vae((16, 32, 32, 32), layers_per_block=1, norm_num_groups=8, sample_size=128)
    vae.register_to_config(scaling_factor=_unit_variance_scaling(vae, generator))
    return _save_pipeline(directory, vae, text_encoder, tokenizer, unet,
                          f"random weights (seed {seed}): output is noise; for testing the machinery only")


# SD 2.1-base's UNet configuration (stabilityai/stable-diffusion-2-1-base, unet/config.json).
SD21_BASE_UNET_CONFIG: dict[str, Any] = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    **SD_BLOCK_LAYOUT,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    cross_attention_dim=1024,
    attention_head_dim=(5, 10, 20, 20),
    use_linear_projection=True,
    norm_num_groups=32,
)


def make_sd21_base_random_dir(directory: str | Path, seed: int = 0) -> Path:
    """SD 2.1-base's real UNet/VAE configuration with random weights, for GPU timing."""
    from diffusers import UNet2DConditionModel  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    directory = Path(directory)
    torch.manual_seed(seed)
    write_character_tokenizer(directory / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(directory / "tokenizer")
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=23,
            num_attention_heads=16,
            max_position_embeddings=77,
            hidden_act="gelu",
            projection_dim=512,
            bos_token_id=len(tokenizer) - 2,
            eos_token_id=len(tokenizer) - 1,
            pad_token_id=len(tokenizer) - 1,
        )
    )
    unet = UNet2DConditionModel(**SD21_BASE_UNET_CONFIG)
    vae = _sd_vae((128, 256, 512, 512), layers_per_block=2, norm_num_groups=32, sample_size=512)
    return _save_pipeline(directory, vae, text_encoder, tokenizer, unet,
                          "random weights (SD 2.1-base shape): output is noise; for timing only")


# SDXL's UNet blocks: a plain level, then two with attention (several transformer layers
# each), mirrored on the way up. Shared by the tiny SDXL model and SDXL's real shape.
SDXL_BLOCK_LAYOUT: dict[str, Any] = dict(
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    addition_embed_type="text_time",
    use_linear_projection=True,
)

# stabilityai/stable-diffusion-xl-base-1.0, unet/config.json.
SDXL_BASE_UNET_CONFIG: dict[str, Any] = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    **SDXL_BLOCK_LAYOUT,
    block_out_channels=(320, 640, 1280),
    layers_per_block=2,
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048,
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,  # 6 time ids x 256 + the 1280-wide pooled text
    norm_num_groups=32,
)


def _sdxl_scheduler():
    from diffusers import EulerDiscreteScheduler  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private

    # What SDXL base ships (the engine makes a DDIM scheduler from its config, as for SD).
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading", prediction_type="epsilon",
                                       num_train_timesteps=1000)
    scheduler.register_to_config(clip_sample=False, set_alpha_to_one=False)  # as SDXL's config.json carries
    return scheduler


def _save_sdxl_pipeline(directory: Path, vae, encoders, tokenizers, unet, warning: str) -> Path:
    from diffusers import StableDiffusionXLPipeline  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private

    pipe = StableDiffusionXLPipeline(
        vae=vae, text_encoder=encoders[0], text_encoder_2=encoders[1], tokenizer=tokenizers[0],
        tokenizer_2=tokenizers[1], unet=unet,
        scheduler=_sdxl_scheduler(),  # pyright: ignore[reportArgumentType]
        add_watermarker=False,
    )
    pipe.save_pretrained(directory, safe_serialization=True)
    (directory / TINY_MARKER).write_text(json.dumps({"warning": warning}))
    return directory


def _sdxl_tokenizers(directory: Path) -> tuple[Any, Any]:
    from transformers import CLIPTokenizer

    for name in ("tokenizer", "tokenizer_2"):
        write_character_tokenizer(directory / name)
    return CLIPTokenizer.from_pretrained(directory / "tokenizer"), CLIPTokenizer.from_pretrained(directory / "tokenizer_2")


def _clip_config(vocab_size: int, **sizes: Any):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=vocab_size, max_position_embeddings=77, bos_token_id=vocab_size - 2,
                          eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1, **sizes)


def make_tiny_sdxl_pipeline_dir(directory: str | Path, seed: int = 0) -> Path:
    """Build and save a tiny random pipeline with SDXL's layout: its UNet's block structure
    (several transformer layers per attention block, size/crop and pooled-text conditioning),
    two text encoders (the second with a projection) and tokenizers written here. Offline."""
    from diffusers import UNet2DConditionModel  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    tokenizers = _sdxl_tokenizers(directory)
    vocab = len(tokenizers[0])
    sizes = dict(intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    encoders = (CLIPTextModel(_clip_config(vocab, hidden_size=32, **sizes)),
                CLIPTextModelWithProjection(_clip_config(vocab, hidden_size=32, projection_dim=32, **sizes)))
    unet = UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, **SDXL_BLOCK_LAYOUT,
        block_out_channels=(32, 64, 64), layers_per_block=2,
        transformer_layers_per_block=(1, 2, 2),  # pyright: ignore[reportArgumentType]  # diffusers' Tuple[int] means any length
        attention_head_dim=8, norm_num_groups=8, cross_attention_dim=64,  # both encoders' 32 side by side
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 32,
    )
    vae = _sd_vae((16, 32, 32, 32), layers_per_block=1, norm_num_groups=8, sample_size=128)
    vae.register_to_config(scaling_factor=_unit_variance_scaling(vae, generator), force_upcast=True)
    return _save_sdxl_pipeline(directory, vae, encoders, tokenizers, unet,
                               f"random weights (seed {seed}, SDXL layout): output is noise; for testing only")


def make_sdxl_random_dir(directory: str | Path, seed: int = 0) -> Path:
    """SDXL base 1.0's real UNet, VAE and text-encoder configuration with random weights, for
    GPU timing (about 7 GB on disk: the weights are saved in fp16)."""
    from diffusers import UNet2DConditionModel  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    tokenizers = _sdxl_tokenizers(directory)
    vocab = len(tokenizers[0])
    encoders = (  # CLIP ViT-L and OpenCLIP ViT-bigG, as SDXL base's text_encoder/text_encoder_2
        CLIPTextModel(_clip_config(vocab, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                   num_attention_heads=12, hidden_act="quick_gelu", projection_dim=768)),
        CLIPTextModelWithProjection(_clip_config(vocab, hidden_size=1280, intermediate_size=5120,
                                                 num_hidden_layers=32, num_attention_heads=20, hidden_act="gelu",
                                                 projection_dim=1280)),
    )
    unet = UNet2DConditionModel(**SDXL_BASE_UNET_CONFIG)
    vae = _sd_vae((128, 256, 512, 512), layers_per_block=2, norm_num_groups=32, sample_size=1024,
                  scaling_factor=0.13025)
    vae.register_to_config(force_upcast=True)
    parts = [unet, *encoders]
    for part in parts:
        part.half()  # 2.6 G UNet parameters: fp16 on disk, as the released weights
    return _save_sdxl_pipeline(directory, vae, encoders, tokenizers, unet,
                               "random weights (SDXL base 1.0 shape): output is noise; for timing only")


def make_tiny_lora(model_dir: str | Path, path: str | Path, seed: int = 0, rank: int = 4, strength: float = 0.5,
                   ) -> Path:
    """A random LoRA for a (tiny) model's UNet attention, saved as one .safetensors file
    in diffusers' format: what a trained style LoRA looks like to the loader."""
    import diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from tokenflow.family import family_of_folder

    model_dir, path = Path(model_dir), Path(path)
    unet = diffusers.UNet2DConditionModel.from_pretrained(model_dir / "unet")  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    generator = torch.Generator().manual_seed(seed)
    state = get_peft_model_state_dict(unet)
    state = {name: torch.randn(value.shape, generator=generator) * strength / rank**0.5 for name, value in state.items()}
    pipeline_class = getattr(diffusers, family_of_folder(model_dir).pipeline_class)
    path.parent.mkdir(parents=True, exist_ok=True)
    pipeline_class.save_lora_weights(path.parent, unet_lora_layers=state, weight_name=path.name)
    return path


def is_random_test_model(directory: str | Path) -> bool:
    return (Path(directory) / TINY_MARKER).exists()


__all__ = ["make_tiny_pipeline_dir", "make_sd21_base_random_dir", "is_random_test_model", "SD21_BASE_UNET_CONFIG",
           "make_tiny_sdxl_pipeline_dir", "make_sdxl_random_dir", "make_tiny_lora", "SDXL_BASE_UNET_CONFIG"]
