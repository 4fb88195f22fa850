"""The media layer: probe clips, read frame ranges exactly, write editor-ready outputs.

PyAV (FFmpeg) does the work; nothing here imports torch, so the editor side and the
server share it.
"""

from bridge.media.decode import read_frames
from bridge.media.errors import MediaError
from bridge.media.clip import ClipInfo, probe
from bridge.media.ranges import parse_frame_range
from bridge.media.timecode import frames_to_timecode, offset_timecode, timecode_to_frames
from bridge.media.writers import (
    FrameWriter,
    ImageSequenceWriter,
    MovieWriter,
    OutputSpec,
    check_output_writable,
    open_writer,
    parse_output_spec,
)

__all__ = [
    "ClipInfo",
    "FrameWriter",
    "ImageSequenceWriter",
    "MediaError",
    "MovieWriter",
    "OutputSpec",
    "check_output_writable",
    "frames_to_timecode",
    "offset_timecode",
    "open_writer",
    "parse_frame_range",
    "parse_output_spec",
    "probe",
    "read_frames",
    "timecode_to_frames",
]
