"""The media layer: probe clips, read frame ranges exactly, write editor-ready outputs.

PyAV (FFmpeg) does the work; nothing here imports torch, so the editor side and the
server share it. Names are loaded on first use, so `bridge.media.presets` (the export
preset table) can be imported by editor scripts and the panel without loading PyAV.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_EXPORTS = {
    "read_frames": "decode",
    "MediaError": "errors",
    "AudioInfo": "clip",
    "ClipInfo": "clip",
    "probe": "clip",
    "clip_facts": "clip",
    "PRESETS": "presets",
    "ExportPreset": "presets",
    "get_preset": "presets",
    "preset_for_output": "presets",
    "parse_frame_range": "ranges",
    "frame_timecode": "timecode",
    "frames_to_timecode": "timecode",
    "offset_timecode": "timecode",
    "timecode_to_frames": "timecode",
    "FrameWriter": "writers",
    "ImageSequenceWriter": "writers",
    "MovieWriter": "writers",
    "OutputSpec": "writers",
    "check_output_writable": "writers",
    "default_output": "writers",
    "open_writer": "writers",
    "parse_output_spec": "writers",
    "resolve_preset": "writers",
}

__all__ = sorted(_EXPORTS)  # pyright: ignore[reportUnsupportedDunderAll]  # _EXPORTS is the one list of names


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        if name in ("audio", "clip", "colour", "decode", "errors", "presets", "ranges", "timecode", "writers"):
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
