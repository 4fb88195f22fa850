"""Frames <-> latents: working resolution, chunked VAE encode and decode."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from tokenflow.aspect import Geometry, crop, geometry
from tokenflow.errors import InvalidInput, NonFiniteValues


def working_size(width: int, height: int, short_side: int = 512) -> tuple[int, int]:
    """The size the model works at: the picture scaled with its aspect kept (short side
    `short_side`), padded to multiples of 64 (tokenflow/aspect.py says how)."""
    return geometry(width, height, short_side).padded


def to_model_input(image: np.ndarray, size: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """HxWx3 uint8 -> 1x3xhxw float in [-1, 1] at `size` = (w, h), resampled on `device`.

    The uint8 frame goes to the device first: resizing a 1080p frame on one CPU thread
    costs ~60 ms, on a GPU well under one.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InvalidInput(f"Expected HxWx3 uint8 frames, got {image.shape} {image.dtype}.")
    pixels = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    tensor = pixels.permute(2, 0, 1)[None].float() / 127.5 - 1.0
    w, h = size
    if tensor.shape[-2:] != (h, w):
        tensor = F.interpolate(tensor, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return tensor.clamp(-1, 1)


def _resized(images: torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    images = images.float()
    if size is not None and images.shape[-2:] != (size[1], size[0]):
        images = F.interpolate(images, size=(size[1], size[0]), mode="bicubic", antialias=True, align_corners=False)
    return images.clamp(-1, 1)


def _quantised(images: torch.Tensor) -> list[np.ndarray]:
    out = ((images + 1.0) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(frame) for frame in out]


def to_uint8(images: torch.Tensor, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """Bx3xhxw in [-1, 1] -> list of HxWx3 uint8, resized to `size` = (w, h) if given."""
    return _quantised(_resized(images, size))


def to_unit_float(images: torch.Tensor) -> list[np.ndarray]:
    """Bx3xHxW in [-1, 1] -> list of HxWx3 float32 in [0, 1]: the decoder's output before
    quantising, for writers that store more than 8 bits."""
    out = ((images + 1.0) * 0.5).permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(frame) for frame in out]


def _check_finite(tensor: torch.Tensor, what: str) -> None:
    if not torch.isfinite(tensor).all():
        raise NonFiniteValues(
            f"The {what} produced NaN or infinite values (a known fp16 overflow in some VAEs): "
            "run with --device cpu, or try another model."
        )


@torch.no_grad()
def encode_frames(
    vae,
    frames: Iterable[np.ndarray | torch.Tensor],
    size: tuple[int, int],
    scaling_factor: float,
    chunk: int = 8,
    on_frame: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """VAE-encode frames with the posterior mean (deterministic), `chunk` at a time.

    `frames`: HxWx3 uint8 images, or 1x3xhxw model inputs from `to_model_input`.
    Returns (N, 4, h/8, w/8) latents on the CPU in float32, so memory on the device
    does not grow with clip length.
    """
    device, dtype = vae.device, vae.dtype
    latents: list[torch.Tensor] = []
    batch: list[torch.Tensor] = []
    count = 0

    def flush() -> None:
        x = torch.cat(batch).to(device, dtype)
        z = vae.encode(x).latent_dist.mean * scaling_factor
        _check_finite(z, "VAE encoder")
        latents.append(z.float().cpu())
        batch.clear()

    for frame in frames:
        batch.append(to_model_input(frame, size, device) if isinstance(frame, np.ndarray) else frame)
        count += 1
        if len(batch) == chunk:
            flush()
        if on_frame:
            on_frame(count)
    if batch:
        flush()
    if not latents:
        raise InvalidInput("No frames were decoded from the input: check the frame range and the file.")
    return torch.cat(latents)


@torch.no_grad()
def decode_chunks(vae, latents: torch.Tensor, scaling_factor: float, chunk: int = 8) -> Iterator[torch.Tensor]:
    """The VAE decoder's pictures (Bx3xhxw in [-1, 1], on its device), `chunk` frames at a time, in order:
    the device's part of decoding. `finish_decoded` is the rest."""
    device, dtype = vae.device, vae.dtype
    for start in range(0, latents.shape[0], chunk):
        z = latents[start : start + chunk].to(device, dtype) / scaling_factor
        yield vae.decode(z).sample


@torch.no_grad()
def finish_decoded(images: torch.Tensor, out_size: tuple[int, int] | None, with_float: bool = False,
                   geo: Geometry | None = None) -> list:
    """The decoder's pictures checked, the pad cropped away (with `geo`, tokenflow/aspect.py), resized to
    `out_size` on their device and brought to the host: HxWx3 uint8 frames, or with `with_float`
    (uint8, float32 in [0, 1]) pairs of the same pictures."""
    _check_finite(images, "VAE decoder")
    resized = _resized(crop(images, geo) if geo is not None else images, out_size)
    if with_float:
        return list(zip(_quantised(resized), to_unit_float(resized)))
    return _quantised(resized)


def decode_latents(
    vae, latents: torch.Tensor, scaling_factor: float, out_size: tuple[int, int] | None, chunk: int = 8,
    with_float: bool = False, geo: Geometry | None = None,
) -> Iterator:
    """Decode latents `chunk` at a time, yielding HxWx3 uint8 frames at `out_size` in order;
    with `with_float`, (uint8, float32 in [0, 1]) pairs of the same pictures. With `geo`,
    the pad is cropped away before the resize. Serial: the engine runs the two halves on
    two threads; this is the reference they must match."""
    for images in decode_chunks(vae, latents, scaling_factor, chunk):
        yield from finish_decoded(images, out_size, with_float, geo)
