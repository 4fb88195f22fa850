"""Small encoded images for the wire: what an editor shows while the full frames come."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def proxy_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side at most `short_side`, aspect kept; never upscaled."""
    scale = min(1.0, short_side / max(1, min(width, height)))
    return max(1, round(width * scale)), max(1, round(height * scale))


# The stored file's extension per proxy format (the replay reads the bytes back as they were sent)
PROXY_EXTENSIONS = {"jpeg": "jpg", "png": "png", "raw": "rgb"}


def encode_proxy(image: np.ndarray, short_side: int, fmt: str = "jpeg") -> tuple[bytes, int, int]:
    """Downscale an HxWx3 uint8 image and encode it; returns (bytes, width, height).
    "raw" is the downscaled pixels themselves, uint8 RGB rows top to bottom, no padding:
    the same pixels a "png" proxy decodes to."""
    h, w = image.shape[:2]
    size = proxy_size(w, h, short_side)
    pil = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    if size != (w, h):
        # BILINEAR with reducing_gap: fast and free of aliasing at these ratios
        pil = pil.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if fmt == "raw":
        return np.asarray(pil.convert("RGB"), dtype=np.uint8).tobytes(), size[0], size[1]
    buf = io.BytesIO()
    if fmt == "png":
        pil.save(buf, format="PNG", compress_level=1)
    else:
        pil.save(buf, format="JPEG", quality=85)
    return buf.getvalue(), size[0], size[1]
