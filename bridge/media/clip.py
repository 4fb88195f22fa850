"""What a clip is: size, exact frame rate, exact frame count, timecode."""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from bridge.media.errors import MediaError


@dataclass(frozen=True)
class ClipInfo:
    """The facts about a source clip that a job and its exports depend on.

    `frame_rate` is an exact rational because editors conform by it: 30000/1001 as a
    float drifts by a frame every few minutes of timecode.
    """

    path: Path
    width: int
    height: int
    frame_rate: Fraction
    frame_count: int
    time_base: Fraction
    start_timecode: str | None
    codec: str
    pix_fmt: str | None


def _unreadable(path: Path) -> str:
    return f"{path} cannot be read (permission denied): fix its permissions or copy it somewhere readable."


def open_input(path: str | Path) -> av.container.InputContainer:
    """Open a clip for reading, turning OS and FFmpeg failures into MediaError."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path} does not exist: check the path.")
    if path.is_dir():
        raise MediaError(f"{path} is a folder, not a video file: pick a video file.")
    if not os.access(path, os.R_OK):
        raise MediaError(_unreadable(path))
    try:
        return av.open(str(path), mode="r")
    except PermissionError as error:
        raise MediaError(_unreadable(path)) from error
    except av.error.FFmpegError as error:
        reason = error.strerror or "unknown format"
        raise MediaError(f"{path} is not a media file FFmpeg can read ({reason}): pick a video file.") from error
    except OSError as error:
        raise MediaError(f"{path} cannot be opened ({error.strerror or error}): check the file and the disk.") from error


def video_stream(container: av.container.InputContainer, path: str | Path) -> av.video.stream.VideoStream:
    """The first video stream; cover art (an attached picture) does not count."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise MediaError(f"{path} has no video stream: pick a video file.")


def stream_frame_rate(stream: av.video.stream.VideoStream, path: str | Path) -> Fraction:
    """The exact frame rate, preferring the cleaner of the two rates FFmpeg reports.

    average_rate is frames over duration and can come out as e.g. 2997003/100000 when
    the last frame's duration is odd; guessed_rate is the stream's base rate. When
    they agree to 0.1 % the one with the smaller denominator is the intended rate.
    """
    candidates = [Fraction(r) for r in (stream.average_rate, stream.guessed_rate) if r]
    candidates = [r for r in candidates if r > 0]
    if not candidates:
        raise MediaError(f"{path} does not say its frame rate: re-wrap it in .mp4 or .mov with a constant frame rate.")
    rate = candidates[0]
    for other in candidates[1:]:
        if abs(other - rate) / rate < Fraction(1, 1000) and other.denominator < rate.denominator:
            rate = other
    return rate


def stream_start(stream: av.video.stream.VideoStream) -> int:
    """The pts of the first frame, which is frame 0 of the clip."""
    return stream.start_time if stream.start_time is not None else 0


def _count_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Count the stream's frames by demuxing only; a packet holds one video frame."""
    container.seek(0, backward=True, any_frame=False)
    return sum(1 for packet in container.demux(stream) if packet.size > 0)


def _frame_count(container: av.container.InputContainer, stream: av.video.stream.VideoStream, rate: Fraction) -> int:
    """Trust the container's count when its duration agrees, otherwise count packets.

    The duration check is the cheap verification: a header whose count and duration
    disagree (a truncated recording, a broken remux) gets counted for real.
    """
    if stream.frames and stream.frames > 0:
        if stream.duration is None or stream.time_base is None:
            return stream.frames
        from_duration = Fraction(stream.duration) * Fraction(stream.time_base) * rate
        if abs(from_duration - stream.frames) <= 1:
            return stream.frames
    return _count_frames(container, stream)


def _timecode(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> str | None:
    """The start timecode from the video stream, a timecode (tmcd) track or the file."""
    sources = [stream.metadata, *(s.metadata for s in container.streams.data), container.metadata]
    for metadata in sources:
        value = metadata.get("timecode")
        if value:
            return value
    return None


def probe(path: str | Path) -> ClipInfo:
    """Describe a clip without decoding it (unless its frame count must be counted)."""
    path = Path(path)
    with open_input(path) as container:
        stream = video_stream(container, path)
        rate = stream_frame_rate(stream, path)
        count = _frame_count(container, stream, rate)
        if count <= 0:
            raise MediaError(f"{path} has a video stream with no frames: pick a clip with picture in it.")
        context = stream.codec_context
        return ClipInfo(
            path=path,
            width=context.width,
            height=context.height,
            frame_rate=rate,
            frame_count=count,
            time_base=Fraction(stream.time_base),
            start_timecode=_timecode(container, stream),
            codec=context.name,
            pix_fmt=context.pix_fmt,
        )
