"""The media layer: probe clips, read frame ranges exactly, write editor-ready outputs.

PyAV (FFmpeg) does the work; nothing here imports torch, so the editor side and the
server share it.
"""

from bridge.media.decode import read_frames
from bridge.media.errors import MediaError
from bridge.media.clip import AudioInfo, ClipInfo, probe
from bridge.media.presets import PRESETS, ExportPreset, get_preset, preset_for_output
from bridge.media.ranges import parse_frame_range
from bridge.media.timecode import frames_to_timecode, offset_timecode, timecode_to_frames
from bridge.media.writers import (
    FrameWriter,
    ImageSequenceWriter,
    MovieWriter,
    OutputSpec,
    check_output_writable,
    default_output,
    open_writer,
    parse_output_spec,
    resolve_preset,
)

__all__ = [
    "AudioInfo",
    "ClipInfo",
    "ExportPreset",
    "FrameWriter",
    "ImageSequenceWriter",
    "MediaError",
    "MovieWriter",
    "OutputSpec",
    "PRESETS",
    "check_output_writable",
    "default_output",
    "frames_to_timecode",
    "get_preset",
    "offset_timecode",
    "open_writer",
    "parse_frame_range",
    "parse_output_spec",
    "preset_for_output",
    "probe",
    "read_frames",
    "resolve_preset",
    "timecode_to_frames",
]
