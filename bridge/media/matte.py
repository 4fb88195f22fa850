"""Reading a matte for `--matte`: a movie, an image sequence numbered like the source, or
the source's own alpha. Frame N of the matte goes with frame N of the source.

Each frame comes out as one H x W uint8 channel: a picture's alpha when it has one
(a roto sequence saved as PNG with alpha, ProRes 4444), else its luma (a black-and-white
matte rendered from an editor); white / opaque = edited. The engine resizes it to the
source size and feathers it (tokenflow/matte.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from bridge.media.clip import open_input, probe, video_stream
from bridge.media.colour import frame_to_rgb
from bridge.media.decode import read_frames
from bridge.media.errors import MediaError

SOURCE_ALPHA = "alpha"  # --matte alpha: the source's own alpha channel
_PRINTF = re.compile(r"%(0?\d*)d")
_HASHES = re.compile(r"#+")
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709


def has_alpha(pix_fmt: str | None) -> bool:
    if not pix_fmt:
        return False
    try:
        return any(component.is_alpha for component in av.VideoFormat(pix_fmt).components)
    except ValueError:
        return False


def matte_channel(frame: av.VideoFrame) -> np.ndarray:
    """A decoded matte picture -> H x W uint8: its alpha if it has one, else its luma."""
    if has_alpha(frame.format.name):
        return np.ascontiguousarray(frame.to_ndarray(format="rgba")[..., 3])
    rgb = frame_to_rgb(frame).astype(np.float32)
    return np.rint(rgb @ LUMA).clip(0, 255).astype(np.uint8)


def is_sequence(spec: str) -> bool:
    name = Path(spec).name
    return bool(_PRINTF.search(name) or _HASHES.search(name))


def sequence_path(spec: str, number: int) -> Path:
    """`matte.%04d.png` or `matte.####.png` with frame `number` filled in."""
    path = Path(spec)
    name = path.name
    if _PRINTF.search(name):
        name = _PRINTF.sub(lambda m: f"{number:{m.group(1) or ''}d}", name, count=1)
    else:
        name = _HASHES.sub(lambda m: f"{number:0{len(m.group(0))}d}", name, count=1)
    return path.with_name(name)


def _picture(path: Path) -> np.ndarray:
    with open_input(path) as container:
        for frame in container.decode(video_stream(container, path)):
            return matte_channel(frame)
    raise MediaError(f"Matte frame {path} holds no picture: export the matte sequence again.")


def check_matte(spec: str, source: str | Path, first: int, last: int, source_pix_fmt: str | None) -> None:
    """Raise MediaError, with what to do, when the matte cannot cover frames first..last."""
    if spec == SOURCE_ALPHA:
        if not has_alpha(source_pix_fmt):
            raise MediaError(f"--matte alpha: {source} has no alpha channel ({source_pix_fmt}): export it with "
                             "alpha (ProRes 4444, PNG, QuickTime Animation) or give --matte a matte file.")
        return
    if is_sequence(spec):
        for number in (first, last):
            path = sequence_path(spec, number)
            if not path.is_file():
                raise MediaError(f"Matte frame {number} ({path}) does not exist: the matte sequence must be "
                                 f"numbered like the source's frames (here {first}..{last}).")
        return
    # Counted now, not found out when the edit reaches the matte's end after minutes of work.
    count = probe(spec).frame_count
    if count <= last:
        raise MediaError(f"The matte {spec} has {count} frame(s) (0..{count - 1}) but the edit needs frames "
                         f"{first}..{last} of it (frame N of the matte goes with source frame N): export the "
                         "matte over the whole source clip, or pick a range within it.")


def read_matte(spec: str, source: str | Path, first: int, last: int) -> Iterator[np.ndarray]:
    """The matte's frames first..last (source numbering) as H x W uint8."""
    if spec == SOURCE_ALPHA:
        yield from read_frames(source, first, last, convert=_alpha_only)
    elif is_sequence(spec):
        for number in range(first, last + 1):
            path = sequence_path(spec, number)
            if not path.is_file():
                raise MediaError(f"Matte frame {number} ({path}) does not exist: the matte sequence must be "
                                 "numbered like the source's frames.")
            yield _picture(path)
    else:
        yield from read_frames(spec, first, last, convert=matte_channel)


def _alpha_only(frame: av.VideoFrame) -> np.ndarray:
    if not has_alpha(frame.format.name):
        raise MediaError(f"--matte alpha: the source's pictures ({frame.format.name}) have no alpha channel: "
                         "export it with alpha or give --matte a matte file.")
    return np.ascontiguousarray(frame.to_ndarray(format="rgba")[..., 3])
