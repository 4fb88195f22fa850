"""Export presets: the one table every writer, command and client picks formats from.

A preset names a finished deliverable an editor drops straight into a timeline: the
codec and pixel format of a movie, or the image format and bit depth of a numbered
sequence. `edit`, `submit`, the render queue and the panel all refer to presets by
`name`; `label` and `description` are what a person reads. The table is import-light
(standard library only, and `bridge.media` loads lazily) so the panel and editor
scripts can list it without PyAV.

When no preset is given, `preset_for_output` keeps the extension-based behaviour:
`.mp4` is H.264, `.mov` ProRes 422 HQ, a folder or `%06d.png` pattern PNG 8-bit,
`.tif`/`.tiff` patterns TIFF 16-bit and `.exr` patterns OpenEXR half float.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PresetKind = Literal["movie", "images"]


@dataclass(frozen=True)
class ExportPreset:
    """One deliverable format.

    `bit_depth` is bits per channel of the stored picture (16 for half float EXR).
    For movies `codec`, `pix_fmt`, `options` and `container` say how FFmpeg encodes
    it and `audio_codec` how the source's audio is carried; for sequences `codec`
    is the image encoder ("png", "tiff" or "exr").
    """

    name: str
    label: str
    kind: PresetKind
    extension: str  # with the dot: ".mov", ".png"
    bit_depth: int
    description: str
    codec: str
    pix_fmt: str = ""
    container: str = ""  # FFmpeg muxer name for movies
    options: tuple[tuple[str, str], ...] = ()
    audio_codec: str = ""  # "pcm" (24-bit little-endian PCM) or "aac"; "" = no audio
    chroma: str = "4:4:4"  # chroma subsampling as editors name it
    float_samples: bool = False  # True: stored as floating point (EXR half)
    editors: tuple[str, ...] = ()  # editors that import it without a conversion step
    min_size: tuple[int, int] = (1, 1)  # smallest (width, height) the encoder accepts

    @property
    def is_movie(self) -> bool:
        return self.kind == "movie"


_NLE_ALL = ("DaVinci Resolve", "Premiere Pro", "Final Cut Pro", "Avid Media Composer", "Blender VSE")

PRESETS: dict[str, ExportPreset] = {
    preset.name: preset
    for preset in (
        ExportPreset(
            name="prores_422_hq", label="ProRes 422 HQ", kind="movie", extension=".mov", bit_depth=10,
            description="Apple ProRes 422 HQ, 10-bit 4:2:2, in QuickTime with 24-bit PCM audio: the usual "
                        "intermediate for grading and finishing.",
            codec="prores_ks", pix_fmt="yuv422p10le", container="mov",
            options=(("profile", "3"), ("vendor", "apl0")), audio_codec="pcm", chroma="4:2:2",
            editors=_NLE_ALL,
        ),
        ExportPreset(
            name="prores_4444", label="ProRes 4444", kind="movie", extension=".mov", bit_depth=10,
            description="Apple ProRes 4444, 10-bit 4:4:4 (no alpha), in QuickTime with 24-bit PCM audio: full "
                        "chroma for keying and compositing.",
            codec="prores_ks", pix_fmt="yuv444p10le", container="mov",
            options=(("profile", "4"), ("vendor", "apl0")), audio_codec="pcm", chroma="4:4:4",
            editors=_NLE_ALL,
        ),
        ExportPreset(
            name="dnxhr_hqx", label="DNxHR HQX", kind="movie", extension=".mov", bit_depth=10,
            description="Avid DNxHR HQX, 10-bit 4:2:2, in QuickTime with 24-bit PCM audio: the Avid-native "
                        "finishing codec, read everywhere else too.",
            codec="dnxhd", pix_fmt="yuv422p10le", container="mov",
            options=(("profile", "dnxhr_hqx"),), audio_codec="pcm", chroma="4:2:2", min_size=(256, 120),
            editors=("DaVinci Resolve", "Premiere Pro", "Avid Media Composer", "Blender VSE",
                     "Final Cut Pro (with Avid's codec pack)"),
        ),
        ExportPreset(
            name="h264", label="H.264", kind="movie", extension=".mp4", bit_depth=8,
            description="H.264 (x264, CRF 16), 8-bit 4:2:0, in MPEG-4 with AAC audio: small files for review "
                        "and the web; lossy, not for further grading.",
            codec="libx264", pix_fmt="yuv420p", container="mp4",
            options=(("crf", "16"), ("preset", "medium")), audio_codec="aac", chroma="4:2:0",
            editors=_NLE_ALL,
        ),
        ExportPreset(
            name="png8", label="PNG 8-bit", kind="images", extension=".png", bit_depth=8,
            description="PNG, 8-bit RGB, lossless, one file per frame numbered with source frame numbers.",
            codec="png", pix_fmt="rgb24", editors=_NLE_ALL,
        ),
        ExportPreset(
            name="png16", label="PNG 16-bit", kind="images", extension=".png", bit_depth=16,
            description="PNG, 16-bit RGB, lossless, from the decoder's float output, one file per frame.",
            codec="png", pix_fmt="rgb48be", editors=_NLE_ALL,
        ),
        ExportPreset(
            name="tiff16", label="TIFF 16-bit", kind="images", extension=".tif", bit_depth=16,
            description="TIFF, 16-bit RGB, deflate-compressed, from the decoder's float output, one file per frame.",
            codec="tiff", pix_fmt="rgb48le", options=(("compression_algo", "deflate"),),
            editors=_NLE_ALL,
        ),
        ExportPreset(
            name="exr_half", label="OpenEXR half float", kind="images", extension=".exr", bit_depth=16,
            description="OpenEXR, RGB half float, ZIP-compressed, from the decoder's float output; code values "
                        "as in the source (display-referred Rec.709), not linearised.",
            codec="exr", pix_fmt="rgbf16", float_samples=True,
            editors=("DaVinci Resolve", "Premiere Pro", "Nuke", "Blender VSE", "Final Cut Pro (via plug-in)"),
        ),
    )
}

# Extensions an image-sequence pattern may end in, and the preset each implies.
_IMAGE_DEFAULTS = {".png": "png8", ".tif": "tiff16", ".tiff": "tiff16", ".exr": "exr_half"}
_MOVIE_DEFAULTS = {".mp4": "h264", ".mov": "prores_422_hq"}


# Short names people type (and editor scripts send): a container or image suffix means
# the preset that suffix implies without --format.
ALIASES: dict[str, str] = {
    "mp4": "h264", "mov": "prores_422_hq", "prores": "prores_422_hq", "prores422hq": "prores_422_hq",
    "prores4444": "prores_4444", "dnxhr": "dnxhr_hqx", "png": "png8", "tif": "tiff16", "tiff": "tiff16",
    "exr": "exr_half",
}


def _normalise(name: str) -> str:
    name = name.strip().lower().lstrip(".").replace("-", "_").replace(" ", "_")
    return ALIASES.get(name, name)


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> ExportPreset:
    """The preset called `name` (case and '-'/'_' ignored); a clear error otherwise."""
    preset = PRESETS.get(_normalise(name))
    if preset is None:
        raise ValueError(
            f"Unknown export format {name!r}: use one of {', '.join(PRESETS)} (`tokenflow formats` describes them)."
        )
    return preset


def image_extensions() -> tuple[str, ...]:
    return tuple(_IMAGE_DEFAULTS)


def preset_for_output(path: str | os.PathLike[str]) -> ExportPreset:
    """The preset an output path implies when none is named.

    A path ending in a separator, or one without a movie extension whose name has no
    dot (a folder), is a PNG sequence; a pattern's extension picks the image format.
    """
    text = os.fspath(path)
    if text.endswith(("/", os.sep)):
        return PRESETS["png8"]
    suffix = Path(text).suffix.lower()
    if suffix in _MOVIE_DEFAULTS:
        return PRESETS[_MOVIE_DEFAULTS[suffix]]
    if suffix in _IMAGE_DEFAULTS:
        return PRESETS[_IMAGE_DEFAULTS[suffix]]
    if not suffix or Path(text).is_dir():
        return PRESETS["png8"]
    raise ValueError(
        f"Output {text} has an extension this tool cannot write: use .mp4, .mov, a folder, or an image-sequence "
        "pattern like frames/%06d.png (.png, .tif, .exr)."
    )


def presets_for_extension(extension: str) -> list[ExportPreset]:
    """Presets that write files ending in `extension` (".tiff" counts as ".tif")."""
    extension = extension.lower()
    if extension == ".tiff":
        extension = ".tif"
    return [p for p in PRESETS.values() if p.extension == extension]
