"""YUV <-> RGB conversion with the matrix the pictures were made with.

swscale defaults to BT.601 whatever the frame says, which shifts the colours of HD
footage (BT.709) on the way in and tags nothing on the way out. Editors treat
untagged video as BT.709 at HD sizes and BT.601 below, so this module follows the
same rule for untagged sources and tags what it writes.

swscale's default fast path also truncates instead of rounding when it turns YUV
into RGB, which darkens every frame by about one level per pass; accurate rounding
and full-resolution chroma keep a decode/encode round trip unbiased.
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

_SCALING = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP

# AVCOL_SPC values that swscale can convert with, mapped to its Colorspace names.
_MATRICES = {
    1: Colorspace.ITU709,
    4: Colorspace.FCC,
    5: Colorspace.ITU601,  # BT.470BG
    6: Colorspace.ITU601,  # SMPTE 170M
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,  # BT.2020 non-constant luminance
}

# (AVCOL_SPC, AVCOL_PRI, AVCOL_TRC) tags written with each matrix.
_HD_TAGS = (1, 1, 1)  # BT.709
_SD_TAGS = (6, 6, 6)  # SMPTE 170M, the BT.601 family


def _is_hd(height: int) -> bool:
    return height >= 720


def frame_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """Decode a frame to H x W x 3 uint8 RGB using its own (or the implied) matrix."""
    matrix = _MATRICES.get(int(frame.colorspace))
    if matrix is None:
        matrix = Colorspace.ITU709 if _is_hd(frame.height) else Colorspace.ITU601
    full_range = int(frame.color_range) == int(ColorRange.JPEG)
    return frame.to_ndarray(
        format="rgb24",
        src_colorspace=matrix,
        src_color_range=ColorRange.JPEG if full_range else ColorRange.MPEG,
        dst_colorspace=matrix,
        interpolation=_SCALING,
    )


def output_tags(height: int) -> tuple[int, int, int]:
    """(colorspace, primaries, transfer) tags for a movie written at this height."""
    return _HD_TAGS if _is_hd(height) else _SD_TAGS


def rgb_to_frame(image: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """Convert RGB to the encoder's YUV format with the matrix `output_tags` names."""
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    matrix = Colorspace.ITU709 if _is_hd(frame.height) else Colorspace.ITU601
    return frame.reformat(
        format=pix_fmt,
        src_colorspace=matrix,
        dst_colorspace=matrix,
        dst_color_range=ColorRange.MPEG,
        interpolation=_SCALING,
    )
