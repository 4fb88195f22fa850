"""Exact aspect ratio: scale, pad to the model's multiple, edit, crop the pad away.

Rounding each side of the working frame to a multiple of 64 stretches the picture
(768x576 at --size 512 was edited at 704x512: 4% wider; a 176x144 clip at --size 64
became square). Instead the frame is scaled with its aspect kept (`content`), then
reflect-padded up to the multiple the model needs (`padded`): a reflection continues
the picture's own textures, so nothing in the pad (no black bar, no hard edge) draws
the model's attention. Decoded frames are cropped back to `content` before they are
resized to the source size, so the pad never reaches an output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tokenflow.errors import InvalidInput

LATENT_MULTIPLE = 64  # VAE /8, then the UNet halves three times


@dataclass(frozen=True)
class Geometry:
    """Where the picture sits in the working frame. All sizes are (width, height)."""

    source: tuple[int, int]
    content: tuple[int, int]  # the picture scaled, aspect kept
    padded: tuple[int, int]  # what the model sees: content plus the pad, multiples of LATENT_MULTIPLE
    offset: tuple[int, int]  # (left, top) of the content inside `padded`

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """(left, right, top, bottom), the order torch's F.pad takes for the last two dimensions."""
        (cw, ch), (pw, ph), (left, top) = self.content, self.padded, self.offset
        return left, pw - cw - left, top, ph - ch - top

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the content in the padded frame."""
        (cw, ch), (left, top) = self.content, self.offset
        return left, top, left + cw, top + ch

    def key(self) -> list[int]:
        """What the inversion depends on: content size and where it sits (for the cache key)."""
        return [*self.content, *self.padded, *self.offset]


def geometry(width: int, height: int, short_side: int = 512) -> Geometry:
    """The short side scaled to `short_side` (the long side rounded to the nearest pixel),
    then padded on both sides, evenly, up to multiples of LATENT_MULTIPLE."""
    if width <= 0 or height <= 0:
        raise InvalidInput(f"Frame size {width}x{height} is not a picture: check the input video.")
    if short_side < LATENT_MULTIPLE:
        raise InvalidInput(f"--size {short_side} is too small: use at least {LATENT_MULTIPLE}.")
    scale = short_side / min(width, height)
    content = (max(1, round(width * scale)), max(1, round(height * scale)))
    padded = tuple(-(-side // LATENT_MULTIPLE) * LATENT_MULTIPLE for side in content)
    offset = tuple((p - c) // 2 for p, c in zip(padded, content))
    return Geometry((width, height), content, (padded[0], padded[1]), (offset[0], offset[1]))


def pad(images: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """Bx C x content -> B x C x padded, by reflection. Each pad is under LATENT_MULTIPLE
    pixels per side (half of one, centred) and the content at least as large, so a
    reflection always fits; `replicate` covers a degenerate 1-pixel side."""
    pads = geo.pads
    if not any(pads):
        return images
    h, w = images.shape[-2:]
    mode = "reflect" if max(pads[0], pads[1]) < w and max(pads[2], pads[3]) < h else "replicate"
    return F.pad(images, pads, mode=mode)


def crop(images: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """B x C x padded -> B x C x content: the pad cut away."""
    left, top, right, bottom = geo.box
    return images[..., top:bottom, left:right]


def crop_array(image: np.ndarray, geo: Geometry) -> np.ndarray:
    """The same cut on an H x W x C picture."""
    left, top, right, bottom = geo.box
    return image[top:bottom, left:right]
