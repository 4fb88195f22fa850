"""On-disk cache of inverted latents, keyed by everything that determines them."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def inversion_key(
    content_digest: str,
    model_identity: str,
    geometry: tuple[int, ...],
    timesteps: tuple[int, ...],
    scheduler_config: dict,
    inversion_prompt: str,
    dtype: str,
    loras: str = "",
) -> str:
    """Stable hash of what determines an inversion; any change gives another key."""
    relevant = {k: scheduler_config.get(k) for k in sorted(scheduler_config) if not k.startswith("_")}
    payload = json.dumps(
        {
            "content": content_digest,
            "model": model_identity,
            "geometry": list(geometry),  # content size, padded size, offset (tokenflow/aspect.py)
            "timesteps": list(timesteps),
            "scheduler": relevant,
            "inversion_prompt": inversion_prompt,
            "dtype": dtype,
            "loras": loras,  # the LoRA set and scales (tokenflow/lora.py): another set inverts differently
            # 2: content is the source pixels' digest, not the latents'; 3: the picture is
            # padded, not stretched (an older entry of the same padded size holds other latents)
            "format": 3,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


LAYOUT = "2"  # entries name their layout; "1" (no metadata): every latent in float32


def compact(latents: dict[int, torch.Tensor], first: int, unet_dtype: torch.dtype) -> dict[int, torch.Tensor]:
    """The latents as the cache keeps them: x_t at the first sampling step in float32 (the edit's
    DDIM chain starts from it in float32), every other x_t in the UNet's dtype.

    The others are only ever read as the UNet's source branch, which converts them to its
    dtype on the way in; a float32 -> float16 -> float32 -> float16 round trip is exact,
    so with a float16 UNet (GPUs) a cache hit edits bit for bit like the cold job, at half
    the disk and I/O. A float32 UNet (CPU) keeps everything in float32.
    """
    return {t: x if t == first else x.to(unet_dtype) if x.is_floating_point() else x for t, x in latents.items()}


class InversionCache:
    """Latents x_t for every sampling timestep t, one safetensors file per key (see `compact`).

    Writes are atomic (temporary file, then rename), so a crash never leaves a
    half-written entry that a later job would trust. Each tensor carries its own dtype,
    so float32 entries written before `compact` existed read back as they were.
    """

    def __init__(self, directory: str | Path | None):
        self.directory = Path(directory) if directory else None

    def _path(self, key: str) -> Path | None:
        return self.directory / f"inversion-{key}.safetensors" if self.directory else None

    def get(self, key: str) -> dict[int, torch.Tensor] | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            tensors = load_file(str(path))
        except Exception:
            return None  # a corrupt entry is a miss; it gets rewritten
        try:
            os.utime(path)  # a hit marks the entry used: size limits evict least recently used first
        except OSError:
            pass
        return {int(name[1:]): tensor for name, tensor in tensors.items()}

    def put(self, key: str, latents: dict[int, torch.Tensor]) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".inversion-", suffix=".partial", dir=path.parent)
        os.close(fd)
        try:
            save_file({f"t{t}": x.detach().cpu().contiguous() for t, x in latents.items()}, tmp,
                      metadata={"tokenflow_inversion_layout": LAYOUT})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
