"""LoRA adapters on the loaded model, through diffusers' adapter API (peft).

An engine keeps the set a job asked for loaded while the next jobs ask for the same
set, and unloads it (the base weights come back exactly: peft adds its layers beside
them, it does not merge) when a job asks for another. A LoRA at scale 0 is the base
model, so it is not loaded at all. A LoRA made for another base model is refused
before any work starts: its cross-attention width names its base (768: SD 1.x, 1024:
SD 2.x, 2048: SDXL).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenflow.errors import ModelNotFound, UnsupportedModel

LORA_SUFFIX = ".safetensors"
# Cross-attention widths of the bases people train LoRAs for.
BASE_BY_WIDTH = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}


@dataclass(frozen=True)
class LoraRef:
    source: str  # a .safetensors file, a folder holding one, or a hub id
    scale: float


def parse_lora(text: str) -> LoraRef:
    """`PATH_OR_ID[:SCALE]`, already checked by bridge/wire/lora_spec.py (this package may not
    import it; tests/tokenflow/test_lora.py holds the two readings equal): the scale follows
    the last colon when that part reads as a number."""
    head, colon, tail = text.strip().rpartition(":")
    if colon and head and not tail.startswith(("\\", "/")):
        try:
            return LoraRef(head, float(tail))
        except ValueError:
            pass
    return LoraRef(text.strip(), 1.0)


def _is_down_weight_of_cross_attention_key(name: str) -> bool:
    flat = name.replace("_", ".")
    return "attn2" in flat and "to.k" in flat and any(m in name for m in ("lora_A", "lora_down", "lora.down", "down.weight"))


def cross_attention_width(shapes: dict[str, tuple[int, ...]]) -> int | None:
    """The text-embedding width a LoRA's cross-attention keys read, from its weights' shapes."""
    for name, shape in shapes.items():
        if _is_down_weight_of_cross_attention_key(name) and len(shape) == 2:
            return int(shape[1])
    return None


def base_name(width: int | None) -> str:
    if width is None:
        return "unknown"
    return BASE_BY_WIDTH.get(width, f"unknown (text width {width})")


def file_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a .safetensors file, without loading its weights."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}


def lora_file(source: str) -> Path | None:
    """The local file a LoRA source names (a .safetensors file, or a folder holding one); None for a hub id."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        files = sorted(path.glob(f"*{LORA_SUFFIX}"))
        if len(files) == 1:
            return files[0]
        raise ModelNotFound(f"LoRA folder {source} holds {len(files)} .safetensors files: name the file itself.")
    if source.lower().endswith(LORA_SUFFIX) or source.startswith(("/", ".", "~")):
        raise ModelNotFound(f"LoRA file {source} does not exist: check the path.")
    return None


def describe_lora_file(path: Path) -> str:
    """`models list`: the base family a LoRA file was trained for."""
    return base_name(cross_attention_width(file_shapes(path)))


class LoraSet:
    """The adapters loaded on one model now."""

    def __init__(self, model: Any):
        self.model = model
        self.loaded: tuple[LoraRef, ...] = ()
        self._identity = ""

    @property
    def identity(self) -> str:
        """What identifies the loaded set for the inversion cache key ("" for none)."""
        return self._identity

    def use(self, wanted: tuple[str, ...]) -> bool:
        """Make `wanted` the loaded set; True when that changed the model."""
        refs = tuple(ref for ref in (parse_lora(text) for text in wanted) if ref.scale != 0)
        if refs == self.loaded:
            return False
        self.unload()
        if not refs:
            return True
        pipe = self.model.pipeline
        if pipe is None:
            raise UnsupportedModel("This engine's model was not loaded through a diffusers pipeline: it takes no LoRA.")
        names = [f"tokenflow_{i}" for i in range(len(refs))]
        identities = []
        try:
            for ref, name in zip(refs, names, strict=True):
                identities.append(self._check(ref))
                pipe.load_lora_weights(ref.source, adapter_name=name)
            pipe.set_adapters(names, adapter_weights=[ref.scale for ref in refs])
        except (UnsupportedModel, ModelNotFound):
            self.unload(force=True)
            raise
        except Exception as exc:  # diffusers/peft raise several types for a file they cannot apply
            self.unload(force=True)
            raise UnsupportedModel(
                f"The LoRA could not be applied to {self.model.name} ({exc.__class__.__name__}: {exc}); check that "
                f"it was trained for {self.model.family.label}."
            ) from exc
        self.loaded = refs
        self._identity = ";".join(f"{identity}*{ref.scale!r}" for identity, ref in zip(identities, refs, strict=True))
        return True

    def _check(self, ref: LoraRef) -> str:
        """Refuse a LoRA for another base; returns its identity (a file's path and modification time)."""
        path = lora_file(ref.source)
        if path is not None:
            shapes = file_shapes(path)
            identity = f"{path.resolve()}@{path.stat().st_mtime_ns}"
        else:  # a hub id: its weights, fetched (or from the cache) as diffusers will load them
            try:
                state, *_ = self.model.pipeline.lora_state_dict(ref.source)
            except Exception as exc:
                raise ModelNotFound(
                    f"LoRA {ref.source!r} could not be found locally or downloaded ({exc.__class__.__name__}): "
                    "give a .safetensors file, or a hub id with network access."
                ) from exc
            shapes = {key: tuple(value.shape) for key, value in state.items()}
            identity = ref.source
        width = cross_attention_width(shapes)
        expected = int(self.model.unet.config.cross_attention_dim)
        if width is not None and width != expected:
            raise UnsupportedModel(
                f"LoRA {ref.source} was trained for {base_name(width)} (text width {width}), but the model is "
                f"{self.model.family.label} (text width {expected}): use a LoRA made for this model's base, or "
                "another --model."
            )
        return identity

    def unload(self, force: bool = False) -> None:
        if (self.loaded or force) and self.model.pipeline is not None:
            self.model.pipeline.unload_lora_weights()
        self.loaded = ()
        self._identity = ""
