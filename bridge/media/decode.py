"""Frame-accurate reading of a range of frames, counted in presentation order.

Seeking in FFmpeg lands on a keyframe near a timestamp, not on a frame number, and
some files land after the target. So a read seeks by pts to the keyframe at or
before the first wanted frame, decodes forward, drops frames until the wanted index,
and, if the seek overshot, seeks again further back. Frame indices come from pts
(index = (pts - start) * time_base * rate), which is exact for constant-rate clips,
the kind editors hand over; once the first frame is found the rest are counted in
decode order, so a range always yields exactly LAST - FIRST + 1 frames or fails.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from bridge.media.colour import frame_to_rgb
from bridge.media.errors import MediaError
from bridge.media.clip import open_input, stream_frame_rate, stream_start, video_stream

# How far before the target a retry seeks, in seconds, doubling each time.
_FIRST_BACKOFF_SECONDS = 1


def _frame_index(pts: int, start: int, time_base: Fraction, rate: Fraction) -> int:
    return round((pts - start) * time_base * rate)


def _index_pts(index: int, start: int, time_base: Fraction, rate: Fraction) -> int:
    # Floor, so rounding never puts the seek target after the wanted frame.
    return start + math.floor(Fraction(index) / rate / time_base)


def _decode_from(path: Path, seek_pts: int | None, first: int, last: int) -> Iterator[np.ndarray | None]:
    """Yield frames first..last decoding from `seek_pts`; yield None once on overshoot."""
    with open_input(path) as container:
        stream = video_stream(container, path)
        stream.thread_type = "AUTO"
        rate = stream_frame_rate(stream, path)
        time_base = Fraction(stream.time_base)
        start = stream_start(stream)
        if seek_pts is not None:
            container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
        wanted = last - first + 1
        delivered = 0
        index = None
        for frame in container.decode(stream):
            if delivered == 0:
                pts = frame.pts
                if pts is None:
                    index = 0 if index is None else index + 1
                else:
                    index = _frame_index(pts, start, time_base, rate)
                if index < first:
                    continue
                if index > first:
                    yield None
                    return
            yield frame_to_rgb(frame)
            delivered += 1
            if delivered == wanted:
                return
        raise MediaError(
            f"{path} ended after {first + delivered} frames, before frame {last}: "
            f"the file may be truncated, re-export it or pick a shorter range."
        )


def read_frames(path: str | Path, first: int, last: int) -> Iterator[np.ndarray]:
    """Yield frames first..last inclusive as H x W x 3 uint8 RGB at the source size.

    A generator holding one decoded frame at a time, so memory does not grow with
    the range. The file stays open until the generator is exhausted or closed.
    """
    path = Path(path)
    if first < 0 or last < first:
        raise MediaError(f"Frame range {first}:{last} is not a valid range: use 0 <= FIRST <= LAST.")
    with open_input(path) as container:
        stream = video_stream(container, path)
        rate = stream_frame_rate(stream, path)
        time_base = Fraction(stream.time_base)
        start = stream_start(stream)
    target = _index_pts(first, start, time_base, rate)
    backoff = int(Fraction(_FIRST_BACKOFF_SECONDS) / time_base)
    seek_pts: int | None = None if first == 0 else target
    while True:
        overshot = False
        for image in _decode_from(path, seek_pts, first, last):
            if image is None:
                overshot = True
                break
            yield image
        if not overshot:
            return
        if seek_pts is None:
            raise MediaError(
                f"{path} starts after frame {first} even when decoded from its beginning: "
                "re-wrap the clip with a constant frame rate and try again."
            )
        seek_pts = target - backoff
        if seek_pts <= start:
            seek_pts = None
        backoff *= 2
