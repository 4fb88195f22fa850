"""An upload read as a job's source: what `bridge.media` gives a job for a file (a
`ClipInfo`, frames in order), made from the uploaded pixel files instead.

The engine reads 8-bit RGB (tokenflow/frames.py): uint16 samples become round(v / 257),
float32 ones round(clip(v, 0, 1) * 255). Alpha is not the model's business: the job
reads it back per frame when it sends the full-resolution frame (`alpha`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from bridge.media.clip import ClipInfo
from server.uploads import META, Description, frame_path, load_description
from tokenflow.errors import EngineError

_RANGE = re.compile(r"^\s*(\d*)\s*:\s*(\d*)\s*$")
_DTYPES = {"uint8": "<u1", "uint16": "<u2", "float32": "<f4"}


class UploadGone(EngineError):
    code = "upload_gone"
    hint = "Upload the frames again (upload_open, upload_frames), then submit the job again."


class RangeError(ValueError):
    pass


def frame_range(text: str | None, desc: Description) -> tuple[int, int]:
    """"FIRST:LAST" in the host's frame numbers (either end open), inside the upload."""
    if text is None:
        return desc.first, desc.last
    match = _RANGE.match(text)
    valid = f"{desc.first}:{desc.last}"
    if match is None:
        raise RangeError(f"Frame range {text!r} is not FIRST:LAST: write it like {valid} (the upload's frames).")
    first = int(match.group(1)) if match.group(1) else desc.first
    last = int(match.group(2)) if match.group(2) else desc.last
    if last < first:
        raise RangeError(f"Frame range {text!r} is empty because LAST comes before FIRST (the upload holds {valid}).")
    if first < desc.first or last > desc.last:
        raise RangeError(f"Frame range {text!r} is outside the upload, which holds frames {valid}.")
    return first, last


def clip_info(desc: Description, folder: Path) -> ClipInfo:
    rate = Fraction(desc.frame_rate)
    return ClipInfo(path=folder, width=desc.width, height=desc.height, frame_rate=rate, frame_count=desc.count,
                    time_base=1 / rate, start_timecode=None, codec="rawvideo", pix_fmt=None)


def read_pixels(folder: Path, desc: Description, frame: int) -> np.ndarray:
    """One uploaded frame as sent: H x W x channels of its dtype."""
    path = frame_path(folder, frame)
    try:
        data = np.fromfile(path, dtype=_DTYPES[desc.dtype])
    except OSError:
        raise UploadGone(f"Frame {frame} of upload {desc.upload} is gone from the server (the upload was deleted "
                         "or expired).") from None
    if data.size != desc.width * desc.height * desc.channels:
        raise UploadGone(f"Frame {frame} of upload {desc.upload} is damaged on the server's disk.")
    return data.reshape(desc.height, desc.width, desc.channels)


def to_uint8(samples: np.ndarray) -> np.ndarray:
    """Samples of any upload dtype as uint8, as the protocol says."""
    if samples.dtype == np.uint8:
        return samples
    if samples.dtype == np.uint16:
        return ((samples.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v / 257)
    clipped = np.nan_to_num(samples.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(clipped, 0.0, 1.0) * 255.0).astype(np.uint8)


def rgb_frames(folder: Path, first: int, last: int) -> Iterator[np.ndarray]:
    """Frames first..last as H x W x 3 uint8, for the engine."""
    desc = _description(folder)
    for frame in range(first, last + 1):
        yield np.ascontiguousarray(to_uint8(read_pixels(folder, desc, frame)[..., :3]))


def alpha(folder: Path, frame: int) -> np.ndarray | None:
    """The frame's alpha as H x W x 1 uint8, or None for an RGB upload."""
    desc = _description(folder)
    if desc.channels < 4:
        return None
    return to_uint8(read_pixels(folder, desc, frame)[..., 3:4])


def touch(folder: Path) -> None:
    """A job read the upload: its keep time starts again (server/uploads.py reads the time)."""
    try:
        os.utime(folder / META)
    except OSError:
        pass


def description(folder: Path) -> Description:
    return _description(folder)


def _description(folder: Path) -> Description:
    try:
        return load_description(folder)
    except (OSError, ValueError, TypeError, KeyError):
        raise UploadGone(f"The upload {folder.name} is gone from the server (deleted or expired).") from None
