"""Frame-accurate reading of a range of frames, numbered by time as editors number them.

Frame N of a clip is the picture on screen at time N / rate from the stream's start,
for every source: constant rate, variable rate, or with gaps in its timestamps. Each
decoded picture gets the slot nearest its timestamp, slot = round((pts - start) *
time_base * rate); frame N shows the last picture whose slot is at most N. So a gap
holds the previous picture for as many frames as it lasts, and of two pictures that
land on one slot the later wins, which is what an editor conforming the clip to its
rate shows. For a constant-rate clip this is simply the Nth picture.

Seeking in FFmpeg lands on a keyframe near a timestamp, and some files land after the
target. So a read seeks by pts to the keyframe at or before the first wanted frame,
decodes forward, and, if the first picture decoded already lies after the wanted
frame, seeks again further back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from bridge.media.clip import open_input, stream_frame_rate, stream_start, stream_time_base, video_stream
from bridge.media.colour import frame_to_rgb
from bridge.media.errors import MediaError

# How far before the target a retry seeks, in seconds, doubling each time.
_FIRST_BACKOFF_SECONDS = 1


def _frame_index(pts: int, start: int, time_base: Fraction, rate: Fraction) -> int:
    return round((pts - start) * time_base * rate)


def _index_pts(index: int, start: int, time_base: Fraction, rate: Fraction) -> int:
    # Floor, so rounding never puts the seek target after the wanted frame.
    return start + math.floor(Fraction(index) / rate / time_base)


Convert = Callable[[av.VideoFrame], np.ndarray]  # a decoded picture -> the array a reader yields


class _Held:
    """The picture currently on screen; converted to RGB once however often it is held."""

    def __init__(self, frame: av.VideoFrame, convert: Convert = frame_to_rgb) -> None:
        self.frame: av.VideoFrame | None = frame
        self.convert = convert
        self._rgb: np.ndarray | None = None

    def rgb(self) -> np.ndarray:
        if self._rgb is None:
            assert self.frame is not None
            self._rgb = self.convert(self.frame)
            self.frame = None
        return self._rgb


def _decode_from(path: Path, seek_pts: int | None, first: int, last: int,
                 convert: Convert = frame_to_rgb) -> Iterator[np.ndarray | None]:
    """Yield frames first..last decoding from `seek_pts`; yield None once on overshoot."""
    with open_input(path) as container:
        stream = video_stream(container, path)
        stream.thread_type = "AUTO"
        rate = stream_frame_rate(stream, path)
        time_base = stream_time_base(stream, path)
        start = stream_start(stream)
        if seek_pts is not None:
            container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
        wanted = first  # the next frame number to deliver
        held: _Held | None = None
        slot = -1
        for frame in container.decode(stream):
            pts = frame.pts
            slot = slot + 1 if pts is None else _frame_index(pts, start, time_base, rate)
            if slot > wanted:
                if held is None:
                    if seek_pts is not None:
                        yield None
                        return
                    # Decoded from the very start and the first picture is late: it is
                    # what is on screen from the start, as in an editor.
                    held = _Held(frame, convert)
                while wanted < slot and wanted <= last:
                    yield held.rgb()
                    wanted += 1
                if wanted > last:
                    return
            held = _Held(frame, convert)
        # The last picture stays on screen through its own slot, the clip's last frame.
        while held is not None and wanted <= min(last, slot):
            yield held.rgb()
            wanted += 1
        if wanted <= last:
            raise MediaError(
                f"{path} ended after {max(wanted, slot + 1)} frames, before frame {last}: "
                f"the file may be truncated, re-export it or pick a shorter range."
            )


def read_frames(path: str | Path, first: int, last: int, convert: Convert = frame_to_rgb) -> Iterator[np.ndarray]:
    """Yield frames first..last inclusive as H x W x 3 uint8 RGB at the source size
    (or whatever `convert` makes of each picture: a matte's one channel, bridge/media/matte.py).

    A generator holding one decoded frame at a time, so memory does not grow with
    the range. The file stays open until the generator is exhausted or closed.
    """
    path = Path(path)
    if first < 0 or last < first:
        raise MediaError(f"Frame range {first}:{last} is not a valid range: use 0 <= FIRST <= LAST.")
    with open_input(path) as container:
        stream = video_stream(container, path)
        rate = stream_frame_rate(stream, path)
        time_base = stream_time_base(stream, path)
        start = stream_start(stream)
    target = _index_pts(first, start, time_base, rate)
    backoff = int(Fraction(_FIRST_BACKOFF_SECONDS) / time_base)
    seek_pts: int | None = None if first == 0 else target
    while True:
        overshot = False
        for image in _decode_from(path, seek_pts, first, last, convert):
            if image is None:
                overshot = True
                break
            yield image
        if not overshot:
            return
        seek_pts = target - backoff
        if seek_pts <= start:
            seek_pts = None
        backoff *= 2
