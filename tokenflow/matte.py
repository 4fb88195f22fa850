"""Edit inside a matte: the latent blend during denoising and the composite at output size.

Two parts, for two promises (docs/algorithm.md, "Edit inside a matte"):
- **Seamless edge**: at every denoising step the edited latents outside the matte are
  replaced by the source's own inverted latents for that timestep (Blended Latent
  Diffusion, Avrahami et al. 2023). The model keeps seeing the source around the
  edited region, so what it draws inside continues it.
- **Untouched outside**: the decoded frame is composited with the source pixels at the
  output size, weighted by the matte there. Where the matte is 0 the output is the
  source pixel, exactly (a VAE round trip alone would change every pixel a little).

The matte arrives as one H x W picture per source frame (uint8 or float in [0, 1]);
reading it from a file is the caller's job (bridge/media/matte.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tokenflow.aspect import Geometry, pad
from tokenflow.errors import InvalidInput

# Codecs leave a level or two of noise in a matte's black and white (a matte movie in
# 8-bit 4:2:0): those count as fully outside / inside, or nothing would be exactly kept.
NOISE_LEVELS = 2
# A feather wider than this many pixels of sigma is blurred on a smaller copy: the
# result differs by far less than one 8-bit level and costs a fraction.
FEATHER_FULL_RES_SIGMA = 4.0
LATENT_FACTOR = 8  # VAE pixels per latent pixel


@dataclass(frozen=True)
class MatteOptions:
    invert: bool = False
    feather: float = 0.0  # soft-edge width in source pixels (Gaussian sigma = feather / 2)


def _as_unit(picture: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """H x W (or H x W x C: the first channel) uint8/float -> 1 x 1 x h x w float in [0, 1] at `size`."""
    if picture.ndim == 3:
        picture = picture[..., 0]
    if picture.ndim != 2:
        raise InvalidInput(f"A matte frame must be a greyscale picture, got shape {picture.shape}.")
    if picture.dtype == np.uint8:
        unit = torch.from_numpy(np.ascontiguousarray(picture)).float() / 255.0
    else:
        unit = torch.from_numpy(np.ascontiguousarray(picture, dtype=np.float32)).clamp(0, 1)
    unit = unit[None, None]
    w, h = size
    if unit.shape[-2:] != (h, w):
        unit = F.interpolate(unit, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    return unit


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian on 1 x 1 x H x W, edges replicated (a matte running off the frame keeps going)."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))


def feathered(matte: torch.Tensor, feather: float) -> torch.Tensor:
    """The matte's edge softened over about `feather` pixels."""
    if feather <= 0:
        return matte
    sigma = feather / 2
    h, w = matte.shape[-2:]
    if sigma <= FEATHER_FULL_RES_SIGMA:
        return _gaussian_blur(matte, sigma).clamp(0, 1)
    factor = sigma / FEATHER_FULL_RES_SIGMA
    small = (max(1, round(h / factor)), max(1, round(w / factor)))
    reduced = F.interpolate(matte, size=small, mode="area")
    blurred = _gaussian_blur(reduced, sigma * small[1] / w)  # the same width, in the copy's pixels
    return F.interpolate(blurred, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def _snapped(matte: torch.Tensor) -> torch.Tensor:
    """As 8-bit levels, codec noise at either end taken away: exactly 0 outside, 255 inside."""
    levels = (matte * 255).round()
    levels = torch.where(levels <= NOISE_LEVELS, 0.0, levels)
    return torch.where(levels >= 255 - NOISE_LEVELS, 255.0, levels).to(torch.uint8)


@dataclass
class PreparedMatte:
    """One clip's matte at the two sizes it is used at."""

    output: list[np.ndarray]  # per frame, H x W uint8 at the source size: the composite's weights
    latent: torch.Tensor  # (N, 1, h/8, w/8) float in [0, 1] at the padded working size: the blend's

    def composite(self, index: int, source: np.ndarray, edited: np.ndarray,
                  precise: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Frame `index` with the source outside the matte: uint8 exact where the matte is 0,
        and the float picture (in [0, 1]) likewise when given."""
        weight = self.output[index].astype(np.float32)[..., None] / 255.0
        src = source.astype(np.float32)
        mixed = np.clip(np.rint(src + (edited.astype(np.float32) - src) * weight), 0, 255).astype(np.uint8)
        if precise is None:
            return mixed, None
        src_unit = src / 255.0
        return mixed, (src_unit + (precise - src_unit) * weight).astype(precise.dtype)


def prepare(mattes: Iterable[np.ndarray], n_frames: int, geo: Geometry, options: MatteOptions) -> PreparedMatte:
    """Every frame's matte, inverted and feathered as asked, at the source size (for the
    composite) and at the latent size of the padded working frame (for the blend)."""
    outputs: list[np.ndarray] = []
    latents: list[torch.Tensor] = []
    latent_size = (geo.padded[1] // LATENT_FACTOR, geo.padded[0] // LATENT_FACTOR)
    for picture in mattes:
        if len(outputs) == n_frames:
            break
        unit = _as_unit(picture, geo.source)
        if options.invert:
            unit = 1.0 - unit
        levels = _snapped(feathered(unit, options.feather))
        outputs.append(levels[0, 0].numpy())
        working = F.interpolate(levels.float() / 255.0, size=(geo.content[1], geo.content[0]), mode="area")
        # The pad takes the matte's reflection, as the picture's: the blend there follows the picture's.
        latents.append(F.interpolate(pad(working, geo), size=latent_size, mode="area"))
    if len(outputs) < n_frames:
        raise InvalidInput(f"The matte has {len(outputs)} frames but the clip {n_frames}: give a matte that covers "
                           "every frame of the range (numbered like the source).")
    return PreparedMatte(outputs, torch.cat(latents))


def blend(latents: torch.Tensor, source: torch.Tensor, matte: torch.Tensor) -> torch.Tensor:
    """Inside (matte 1) the edit, outside (0) the source's inverted latents, for one timestep.
    Where the matte is 0 the result is `source` exactly."""
    matte = matte.to(latents.device, latents.dtype)
    return torch.where(matte == 0, source, matte * latents + (1 - matte) * source)
