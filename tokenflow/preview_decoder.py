"""Instant previews: a tiny autoencoder (diffusers' AutoencoderTiny, TAESD for SD 1.x/2.x)
decodes keyframe previews and the proxies shown before the final frames.

The full VAE decoder is the most expensive part of a preview (126 s of a 449 s CPU run at
the real SD shape); TAESD decodes the same latents into a close likeness for a small
fraction of that (docs/benchmarks.md). The final frames are still decoded by the full VAE
only. Optional: without one, previews go through the full VAE as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tokenflow.errors import ModelNotFound


class PreviewDecoder:
    """An AutoencoderTiny on the model's device; decodes latents in the UNet's units."""

    def __init__(self, autoencoder: Any, source: str):
        self.autoencoder = autoencoder
        self.source = source

    @classmethod
    def load(cls, folder: str | Path, device: torch.device, dtype: torch.dtype) -> PreviewDecoder:
        from diffusers import AutoencoderTiny  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API

        try:
            autoencoder = AutoencoderTiny.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotFound(f"{folder} is not a tiny autoencoder (AutoencoderTiny) folder ({exc}): `tokenflow "
                                "models pull madebyollin/taesd` brings TAESD; without one previews use the full VAE.") from exc
        autoencoder = autoencoder.to(device=device, dtype=dtype)  # pyright: ignore[reportCallIssue,reportArgumentType]  # diffusers types .to loosely
        return cls(autoencoder.eval(), str(folder))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents as the UNet makes them (scaled by the pipeline VAE's factor) -> images in [-1, 1].

        TAESD is trained on those scaled latents, as diffusers' pipelines hand them over:
        they divide by the tiny autoencoder's own factor (1.0), not the full VAE's."""
        ae = self.autoencoder
        z = latents.to(ae.device, ae.dtype) / float(ae.config.scaling_factor)
        return ae.decode(z).sample.float().clamp(-1, 1)


def make_random_taesd(directory: str | Path, seed: int = 0) -> Path:
    """TAESD's configuration (diffusers' AutoencoderTiny defaults) with random weights, saved
    as a diffusers folder: for tests and benchmarks without the hub. Its pictures are noise."""
    from diffusers import AutoencoderTiny  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API

    torch.manual_seed(seed)
    directory = Path(directory)
    AutoencoderTiny().save_pretrained(str(directory))
    return directory
