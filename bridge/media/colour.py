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

from dataclasses import dataclass

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


_UNSPECIFIED = (0, 2)  # AVCOL_*_RESERVED0 / UNSPECIFIED: the file says nothing
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


@dataclass(frozen=True)
class ColourTags:
    """How a clip's pictures are encoded: the four tags editors read from a movie.

    Values are FFmpeg's AVCOL_* numbers (1 = BT.709 for the first three). `assumed`
    lists the tags the source did not carry and were filled in by the editors' rule
    (BT.709 at 720 lines and above, SMPTE 170M below; limited range).
    """

    matrix: int
    primaries: int
    transfer: int
    full_range: bool
    assumed: tuple[str, ...] = ()

    def describe(self) -> str:
        names = {1: "BT.709", 5: "BT.470BG", 6: "SMPTE 170M", 7: "SMPTE 240M", 9: "BT.2020", 4: "FCC",
                 13: "sRGB", 14: "BT.2020 10-bit", 16: "PQ", 18: "HLG", 8: "linear"}
        text = (f"matrix {names.get(self.matrix, self.matrix)}, primaries {names.get(self.primaries, self.primaries)}, "
                f"transfer {names.get(self.transfer, self.transfer)}, {'full' if self.full_range else 'limited'} range")
        return text + (f" (assumed: {', '.join(self.assumed)})" if self.assumed else "")


def source_tags(colorspace: int, primaries: int, transfer: int, color_range: int, height: int) -> ColourTags:
    """The source's tags, with untagged ones filled in the way editors fill them."""
    default = _HD_TAGS if _is_hd(height) else _SD_TAGS
    assumed = []
    values = []
    for name, value, fallback in zip(("matrix", "primaries", "transfer"), (colorspace, primaries, transfer), default):
        if int(value) in _UNSPECIFIED:
            assumed.append(name)
            value = fallback
        values.append(int(value))
    if int(color_range) == 0:
        assumed.append("range")
    if values[0] not in _MATRICES:
        # A matrix swscale cannot convert with (e.g. ICtCp): convert and tag with the height rule.
        assumed.append("matrix")
        values[0] = default[0]
    return ColourTags(values[0], values[1], values[2], int(color_range) == _FULL_RANGE, tuple(assumed))


# CIE xy of red, green, blue and white for each AVCOL_PRI value, as OpenEXR's
# `chromaticities` attribute wants them (ITU-R BT.709, EBU/BT.470BG, SMPTE 170M/240M, BT.2020).
_D65 = (0.3127, 0.3290)
_CHROMATICITIES = {
    1: (0.640, 0.330, 0.300, 0.600, 0.150, 0.060, *_D65),
    5: (0.640, 0.330, 0.290, 0.600, 0.150, 0.060, *_D65),
    6: (0.630, 0.340, 0.310, 0.595, 0.155, 0.070, *_D65),
    7: (0.630, 0.340, 0.310, 0.595, 0.155, 0.070, *_D65),
    9: (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, *_D65),
}


def chromaticities(primaries: int) -> tuple[float, ...] | None:
    """The primaries as CIE xy (for OpenEXR), or None for ones not listed here."""
    return _CHROMATICITIES.get(int(primaries))


def default_tags(height: int) -> ColourTags:
    """Tags for pictures of unknown origin: what editors assume for untagged video."""
    return source_tags(0, 0, 0, 0, height)


def rgb_to_frame(image: np.ndarray, pix_fmt: str, tags: ColourTags | None = None, full_range: bool = False) -> av.VideoFrame:
    """Convert RGB (uint8 rgb24, or uint16 rgb48) to the encoder's YUV format.

    The matrix is the one `tags` names (by default the height rule), so the YUV
    written matches the tags written beside it; nothing else about the colours changes.
    """
    rgb_format = "rgb48le" if image.dtype == np.uint16 else "rgb24"
    frame = av.VideoFrame.from_ndarray(image, format=rgb_format)
    tags = tags or default_tags(frame.height)
    matrix = _MATRICES[tags.matrix]
    return frame.reformat(
        format=pix_fmt,
        src_colorspace=matrix,
        dst_colorspace=matrix,
        dst_color_range=ColorRange.JPEG if full_range else ColorRange.MPEG,
        interpolation=_SCALING,
    )
