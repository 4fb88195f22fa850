"""SMPTE timecode arithmetic, so an export can start at the source's timecode.

Only what offsetting a start timecode needs: parse "HH:MM:SS:FF" (or drop-frame
"HH:MM:SS;FF"), add frames, format it back. Drop-frame counting follows SMPTE 12M:
at 29.97 and 59.94 fps, frame numbers 0-1 (0-3 at 59.94) are skipped at the start of
every minute except each tenth minute.

Why not `opentimelineio.opentime` (compared in tests/bridge/test_timecode_otio.py; it agrees
everywhere else, and serves as the test oracle):
- to_timecode: at 29.97/59.94 non-drop it wraps early near 24:00:00 (float seconds), and it
  refuses drop-frame style (";") at non-NTSC rates and rates outside its SMPTE list (119.88, 120).
- from_timecode: it does not check ranges (01:61:00:00, frame 100 at 25 fps pass), takes five
  fields, and reads "," as non-drop; files carry such timecodes and we must refuse or keep them.
"""

from __future__ import annotations

import re
from fractions import Fraction

_TIMECODE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


def nominal_rate(frame_rate: Fraction) -> int:
    """The integer frame count per timecode second (30 for 30000/1001)."""
    return max(1, round(frame_rate))


def _drop_count(frame_rate: Fraction, drop_frame: bool) -> int:
    if not drop_frame:
        return 0
    # Drop-frame only exists for the NTSC family; 2 frames per minute at 29.97.
    return 2 * (nominal_rate(frame_rate) // 30) if frame_rate.denominator == 1001 else 0


def timecode_to_frames(timecode: str, frame_rate: Fraction) -> tuple[int, bool]:
    """Return (frame number since 00:00:00:00, whether it is drop-frame).

    Raises ValueError for anything that is not a timecode at this rate.
    """
    match = _TIMECODE.match(timecode.strip())
    if match is None:
        raise ValueError(f"not a timecode: {timecode!r}")
    hours, minutes, seconds, separator, frames = match.groups()
    h, m, s, f = int(hours), int(minutes), int(seconds), int(frames)
    fps = nominal_rate(frame_rate)
    if m >= 60 or s >= 60 or f >= fps:
        raise ValueError(f"timecode {timecode!r} is out of range at {fps} fps")
    drop_frame = separator in ";,"
    drop = _drop_count(frame_rate, drop_frame)
    total_minutes = 60 * h + m
    number = ((h * 3600 + m * 60 + s) * fps + f) - drop * (total_minutes - total_minutes // 10)
    return number, drop_frame


def frames_to_timecode(number: int, frame_rate: Fraction, drop_frame: bool) -> str:
    """Format a frame number as timecode, wrapping at 24 hours like a deck would."""
    fps = nominal_rate(frame_rate)
    drop = _drop_count(frame_rate, drop_frame)
    if drop:
        per_minute = fps * 60 - drop
        per_ten_minutes = fps * 600 - drop * 9
        day = per_ten_minutes * 6 * 24
        number %= day
        tens, rest = divmod(number, per_ten_minutes)
        number += drop * 9 * tens
        if rest > drop:
            number += drop * ((rest - drop) // per_minute)
    else:
        number %= fps * 3600 * 24
    f = number % fps
    s = (number // fps) % 60
    m = (number // (fps * 60)) % 60
    h = number // (fps * 3600)
    return f"{h:02d}:{m:02d}:{s:02d}{';' if drop_frame else ':'}{f:02d}"


def frame_timecode(start_timecode: str | None, frame: int, frame_rate: Fraction) -> str:
    """The timecode of a clip's `frame` (0 = its first): from its start timecode, else from 00:00:00:00
    (also when the start is not a timecode at this rate, so a display never fails on odd metadata)."""
    start, drop_frame = 0, False
    if start_timecode:
        try:
            start, drop_frame = timecode_to_frames(start_timecode, frame_rate)
        except ValueError:
            pass
    return frames_to_timecode(start + frame, frame_rate, drop_frame)


def offset_timecode(timecode: str, frames: int, frame_rate: Fraction) -> str:
    """The timecode `frames` frames after `timecode`, keeping its drop-frame style."""
    number, drop_frame = timecode_to_frames(timecode, frame_rate)
    return frames_to_timecode(number + frames, frame_rate, drop_frame)
