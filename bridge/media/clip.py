"""What a clip is: size, exact frame rate, frame count as editors count it, timecode,
colour tags, audio, and whether its timestamps are regular."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
import av.error
import av.stream
import av.video.stream

from bridge.media.audio_check import check_audio
from bridge.media.colour import ColourTags, source_tags
from bridge.media.errors import MediaError


@dataclass(frozen=True)
class AudioInfo:
    """The first audio stream: what an export carries alongside the picture."""

    codec: str
    sample_rate: int
    channels: int
    layout: str
    sample_format: str
    duration_s: float | None  # None when the file does not say
    # Why the stream cannot be decoded (its exports then carry no audio); None when it can.
    problem: str | None = None


@dataclass(frozen=True)
class ClipInfo:
    """The facts about a source clip that a job and its exports depend on.

    `frame_rate` is an exact rational because editors conform by it: 30000/1001 as a
    float drifts by a frame every few minutes of timecode. `frame_count` counts
    frames at that rate from the stream's start (see bridge.media.decode): for a
    variable-rate clip or one with timestamp gaps it differs from `pictures`, the
    number of pictures stored, by the `held_frames` that repeat a picture.
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
    colour: ColourTags | None = None
    audio: AudioInfo | None = None
    start_s: Fraction = Fraction(0)  # the video stream's first timestamp, seconds
    pictures: int | None = None  # pictures stored; None when only the header was read
    variable_rate: bool = False
    held_frames: int = 0  # frames that show the previous picture again (timestamp gaps)
    dropped_pictures: int = 0  # pictures that share a frame with a later one and are never shown
    timestamps_checked: bool = False  # True when every timestamp was read (not just the header)

    @property
    def duration_s(self) -> Fraction:
        return Fraction(self.frame_count) / self.frame_rate


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
    When they disagree the clip is variable-rate or has gaps in its timestamps, and
    its base rate is the one an editor conforms it to (gaps hold a picture), as long
    as it is a plausible one: above the average, below twice it (twice is the field
    rate of interlaced video) and below 240.
    """
    average = Fraction(stream.average_rate) if stream.average_rate else None
    guessed = Fraction(stream.guessed_rate) if stream.guessed_rate else None
    candidates = [r for r in (average, guessed) if r is not None and r > 0]
    if not candidates:
        raise MediaError(f"{path} does not say its frame rate: re-wrap it in .mp4 or .mov with a constant frame rate.")
    rate = candidates[0]
    for other in candidates[1:]:
        if abs(other - rate) / rate < Fraction(1, 1000):
            if other.denominator < rate.denominator:
                rate = other
        elif rate < other < min(2 * rate * Fraction(999, 1000), Fraction(240)):
            # Exactly twice the average is the field rate of interlaced video, not gaps.
            rate = other
    return rate


def stream_time_base(stream: av.stream.Stream, path: str | Path) -> Fraction:
    """The unit of the stream's timestamps. FFmpeg gives every stream it demuxes one."""
    if stream.time_base is None:
        raise MediaError(f"{path} has a stream without a time base: re-wrap it in .mp4 or .mov.")
    return Fraction(stream.time_base)


def stream_start(stream: av.video.stream.VideoStream) -> int:
    """The pts of the first frame, which is frame 0 of the clip."""
    return stream.start_time if stream.start_time is not None else 0


@dataclass(frozen=True)
class _Timing:
    frame_count: int
    pictures: int
    variable_rate: bool
    held_frames: int
    dropped_pictures: int


def _scan_timestamps(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                     rate: Fraction, time_base: Fraction) -> _Timing | None:
    """Read every packet's timestamp (demuxing only, no decoding) and number them by time."""
    container.seek(0, backward=True, any_frame=False)
    stamps = sorted(packet.pts for packet in container.demux(stream) if packet.size > 0 and packet.pts is not None)
    if not stamps:
        return None
    start = stream_start(stream)
    slots = [round((pts - start) * time_base * rate) for pts in stamps]
    shown = len(set(slots))
    count = max(slots) + 1
    # Irregular spacing beyond a quarter frame, even without a gap, makes a clip variable-rate.
    irregular = any(abs((b - a) * time_base * rate - 1) > Fraction(1, 4) for a, b in zip(stamps, stamps[1:]))
    return _Timing(count, len(stamps), irregular or count != shown or shown != len(stamps),
                   count - shown, len(stamps) - shown)


def _header_count(stream: av.video.stream.VideoStream, rate: Fraction) -> int | None:
    """The container's frame count when its duration agrees with it, else None.

    The duration check is the cheap verification: a header whose count and duration
    disagree (a truncated recording, a broken remux, timestamp gaps) gets scanned.
    """
    if stream.frames and stream.frames > 0:
        if stream.duration is None or stream.time_base is None:
            return stream.frames
        from_duration = Fraction(stream.duration) * Fraction(stream.time_base) * rate
        if abs(from_duration - stream.frames) <= 1:
            return stream.frames
    return None


def _last_frame_present(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                        count: int, rate: Fraction, time_base: Fraction) -> bool:
    """Whether the header's last frame can be read: a truncated fast-start MP4 keeps a full
    index (count and duration agree) over data that stops half-way. One seek near the end
    and one GOP demuxed, so trusting a header stays cheap."""
    start = stream_start(stream)
    last = start + int((count - 1) / rate / time_base)
    try:
        container.seek(last, stream=stream, backward=True, any_frame=False)
        seen = max((packet.pts for packet in container.demux(stream) if packet.size > 0 and packet.pts is not None),
                   default=None)
    except (av.error.FFmpegError, OSError, ValueError):
        return True  # no seeking in this file: the header is all there is to go on
    return seen is not None and (seen - last) * time_base * rate >= Fraction(-1, 2)


def _decodable_count(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                     count: int, rate: Fraction, time_base: Fraction) -> int:
    """How many frames decode, for a file cut short: its last GOP decoded (the last packets
    of a cut file are partial, or reference frames that are missing), the rest trusted."""
    start = stream_start(stream)
    last = start + int((count - 1) / rate / time_base)
    shown: list[int] = []
    try:
        container.seek(last, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is not None:
                shown.append(round((frame.pts - start) * time_base * rate))
    except (av.error.FFmpegError, OSError, ValueError):
        pass  # where the data stops: what decoded before it is what the file has
    return min(count, max(shown) + 1) if shown else count


def _audio(container: av.container.InputContainer, path: Path) -> AudioInfo | None:
    for stream in container.streams.audio:
        context = stream.codec_context
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return AudioInfo(
            codec=context.name, sample_rate=context.sample_rate, channels=context.channels,
            layout=context.layout.name if context.layout else "", sample_format=context.format.name if context.format else "",
            duration_s=duration, problem=getattr(check_audio(path), "problem", None),
        )
    return None


def _timecode(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> str | None:
    """The start timecode from the video stream, a timecode (tmcd) track or the file."""
    sources = [stream.metadata, *(s.metadata for s in container.streams.data), container.metadata]
    for metadata in sources:
        value = metadata.get("timecode")
        if value:
            return value
    return None


def probe(path: str | Path, scan: bool = False) -> ClipInfo:
    """Describe a clip, reading only its header unless its frame count must be counted.

    `scan=True` reads every timestamp (demuxing, not decoding) so `variable_rate`,
    `held_frames` and the count are checked, not taken from the header; a header
    that does not add up is always scanned.
    """
    path = Path(path)
    with open_input(path) as container:
        stream = video_stream(container, path)
        rate = stream_frame_rate(stream, path)
        time_base = stream_time_base(stream, path)
        header = _header_count(stream, rate)
        count = None if scan else header
        cut = header is not None and not _last_frame_present(container, stream, header, rate, time_base)
        if cut:
            count = None  # the index promises more than the file holds: count what is there
        timing = None
        if count is None:
            timing = _scan_timestamps(container, stream, rate, time_base)
            count = timing.frame_count if timing else 0
            if cut and count > 0:
                count = _decodable_count(container, stream, count, rate, time_base)
        if count <= 0:
            raise MediaError(f"{path} has a video stream with no frames: pick a clip with picture in it.")
        context = stream.codec_context
        return ClipInfo(
            path=path,
            width=context.width,
            height=context.height,
            frame_rate=rate,
            frame_count=count,
            time_base=time_base,
            start_timecode=_timecode(container, stream),
            codec=context.name,
            pix_fmt=context.pix_fmt,
            colour=source_tags(context.colorspace, context.color_primaries, context.color_trc,
                               context.color_range, context.height),
            audio=_audio(container, path),
            start_s=stream_start(stream) * time_base,
            pictures=timing.pictures if timing else None,
            variable_rate=timing.variable_rate if timing else False,
            held_frames=timing.held_frames if timing else 0,
            dropped_pictures=timing.dropped_pictures if timing else 0,
            timestamps_checked=timing is not None,
        )


def clip_facts(info: ClipInfo) -> dict[str, Any]:
    """A ClipInfo as plain values: what `probe --json` prints and the protocol's `clip` reply carries."""
    from bridge.media.timecode import offset_timecode

    end_timecode = None
    if info.start_timecode:
        try:
            end_timecode = offset_timecode(info.start_timecode, info.frame_count - 1, info.frame_rate)
        except ValueError:
            end_timecode = None
    colour = info.colour
    audio = info.audio
    return {
        "path": str(info.path),
        "width": info.width,
        "height": info.height,
        "frame_rate": f"{info.frame_rate.numerator}/{info.frame_rate.denominator}",
        "frame_count": info.frame_count,
        "duration_s": float(info.duration_s),
        "start_timecode": info.start_timecode,
        "end_timecode": end_timecode,
        "codec": info.codec,
        "pix_fmt": info.pix_fmt,
        "variable_rate": info.variable_rate,
        "pictures": info.pictures,
        "held_frames": info.held_frames,
        "dropped_pictures": info.dropped_pictures,
        "colour": None if colour is None else {
            "matrix": colour.matrix, "primaries": colour.primaries, "transfer": colour.transfer,
            "full_range": colour.full_range, "assumed": list(colour.assumed), "text": colour.describe(),
        },
        "audio": None if audio is None else asdict(audio),
    }
