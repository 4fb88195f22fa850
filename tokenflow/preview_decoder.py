"""Instant previews: a tiny autoencoder (diffusers' AutoencoderTiny: TAESD for SD 1.x/2.x,
TAESDXL for SDXL) decodes keyframe previews and the proxies shown before the final frames.

The full VAE decoder is the most expensive part of a preview (126 s of a 449 s CPU run at
the real SD shape); TAESD decodes the same latents into a close likeness for a small
fraction of that (docs/benchmarks.md). The final frames are still decoded by the full VAE
only. Optional: without one, previews go through the full VAE as before.

Which one a model takes is its family's (tokenflow/family.py, `preview_repo`): SD's and
SDXL's VAEs have different latent spaces, so TAESD on SDXL latents (or TAESDXL on SD's)
would show a wrong picture; one of the other family is never used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from tokenflow.errors import ModelNotFound
from tokenflow.family import FAMILIES, Family


class PreviewDecoder:
    """An AutoencoderTiny on the model's device; decodes latents in the UNet's units."""

    def __init__(self, autoencoder: Any, source: str):
        self.autoencoder = autoencoder
        self.source = source

    @classmethod
    def for_family(cls, found: Mapping[str, str | Path], family: Family, device: torch.device,
                   dtype: torch.dtype) -> tuple[PreviewDecoder | None, str]:
        """The tiny autoencoder for `family` among those `found` (family name -> folder), and
        why there is none when one was found but cannot serve: one that does not load, or
        only another family's (never used: its latent space is not this model's)."""
        if family.name in found:
            try:
                return cls.load(found[family.name], device, dtype, family), ""
            except ModelNotFound as exc:
                return None, str(exc)
        others = [(FAMILIES[name], path) for name, path in found.items() if name in FAMILIES]
        if not others:
            return None, ""
        other, path = others[0]
        return None, (f"{other.preview_label} ({path}) decodes {other.label} latents, not this {family.label} "
                      f"model's (their VAEs differ), so it is not used: `tokenflow models pull "
                      f"{family.preview_repo}` brings {family.preview_label}")

    @classmethod
    def load(cls, folder: str | Path, device: torch.device, dtype: torch.dtype,
             family: Family = FAMILIES["sd"]) -> PreviewDecoder:
        from diffusers import AutoencoderTiny  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API

        try:
            autoencoder = AutoencoderTiny.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotFound(f"{folder} is not a tiny autoencoder (AutoencoderTiny) folder ({exc}): `tokenflow "
                                f"models pull {family.preview_repo}` brings {family.preview_label}; without one "
                                "previews use the full VAE.") from exc
        autoencoder = autoencoder.to(device=device, dtype=dtype)  # pyright: ignore[reportCallIssue,reportArgumentType]  # diffusers types .to loosely
        return cls(autoencoder.eval(), str(folder))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents as the UNet makes them (scaled by the pipeline VAE's factor) -> images in [-1, 1].

        TAESD and TAESDXL are trained on those scaled latents (SD's VAE factor 0.18215,
        SDXL's 0.13025 already applied), as diffusers' SD and SDXL pipelines hand them over:
        they divide by the tiny autoencoder's own factor (1.0), not the full VAE's. Its
        latent_magnitude/latent_shift only pack latents into 8-bit pictures; decoding does not use them."""
        ae = self.autoencoder
        z = latents.to(ae.device, ae.dtype) / float(ae.config.scaling_factor)
        return ae.decode(z).sample.float().clamp(-1, 1)


def make_random_taesd(directory: str | Path, seed: int = 0) -> Path:
    """TAESD's configuration (diffusers' AutoencoderTiny defaults) with random weights, saved
    as a diffusers folder: for tests and benchmarks without the hub. Its pictures are noise.
    TAESDXL's configuration is the same (only its weights differ), so this stands in for
    either; which family it serves is told by its name (tokenflow/family.py)."""
    from diffusers import AutoencoderTiny  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API

    torch.manual_seed(seed)
    directory = Path(directory)
    AutoencoderTiny().save_pretrained(str(directory))
    return directory
