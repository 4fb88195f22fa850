"""Test clips made with PyAV: the awkward sources editors hand over.

Every picture is a flat grey whose level encodes its picture number (16 + 8 * n, up to 29 pictures), so
a test can tell which picture a decoded frame shows even after lossy coding.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

NTSC = Fraction(30000, 1001)


def level(picture: int) -> int:
    return 16 + 8 * picture


def picture_number(image: np.ndarray) -> int:
    """Which picture a decoded frame shows (inverse of `level`)."""
    return round((float(image[..., 1].mean()) - 16) / 8)


def audio_signal(samples: int, channels: int) -> np.ndarray:
    """Noise shaped to stay well inside full scale: no stretch of it looks like another,
    so where an export's audio came from in the source is unambiguous."""
    rng = np.random.default_rng(7)
    noise = rng.standard_normal((channels, samples)).astype(np.float32)
    kernel = np.ones(8, np.float32) / 8  # low-passed, so AAC keeps its shape
    return np.stack([0.3 * np.convolve(row, kernel, mode="same") for row in noise])


def _picture(n: int, size: tuple[int, int]) -> av.VideoFrame:
    width, height = size
    image = np.full((height, width, 3), level(n), np.uint8)
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def make_clip(
    path: Path,
    *,
    rate: Fraction = Fraction(25),
    pictures: int = 12,
    size: tuple[int, int] = (64, 48),
    timecode: str | None = None,
    slots: list[float] | None = None,
    audio_rate: int | None = None,
    audio_layout: str = "stereo",
    audio_codec: str = "aac",
    audio_seconds: float | None = None,
    colour: tuple[int, int, int, int] | None = None,
) -> Path:
    """An H.264 clip; `slots` gives each picture's frame slot (gaps = timestamp gaps).

    With `audio_rate` it carries `audio_signal` noise for `audio_seconds` (default: as
    long as the picture).
    """
    slots = slots if slots is not None else list(range(pictures))
    fmt = "mov" if path.suffix == ".mov" else "mp4"
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=rate, options={"qp": "4", "preset": "ultrafast"})
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        time_base = Fraction(1, int(rate.numerator * (1000 if rate.denominator > 1 else 100)))
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        per_frame = int(1 / rate / time_base)
        if colour:  # (matrix, primaries, transfer, range) as AVCOL_* numbers
            context = stream.codec_context
            context.colorspace, context.color_primaries, context.color_trc, context.color_range = colour
        if timecode:
            stream.metadata["timecode"] = timecode
        audio = None
        if audio_rate:
            audio = container.add_stream(audio_codec, rate=audio_rate, layout=audio_layout)
        for n, slot in enumerate(slots):
            frame = _picture(n, size)
            frame.pts = round(slot * per_frame)
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if audio is not None:
            seconds = audio_seconds if audio_seconds is not None else float((max(slots) + 1) / rate)
            total = round(seconds * audio_rate)
            channels = len(av.AudioLayout(audio_layout).channels)
            chunk = audio.codec_context.frame_size or 1024
            signal = audio_signal(total, channels)
            for start in range(0, total, chunk):
                count = min(chunk, total - start)
                samples = signal[:, start:start + count]
                audio_format = audio.codec_context.format.name
                if audio_format.startswith("s16"):
                    data = (samples * 32767).astype(np.int16)
                else:
                    data = samples.astype(np.float32)
                if not audio_format.endswith("p"):
                    data = data.T.reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=audio_format, layout=audio_layout)
                frame.sample_rate = audio_rate
                frame.pts = start
                frame.time_base = Fraction(1, audio_rate)
                for packet in audio.encode(frame):
                    container.mux(packet)
            for packet in audio.encode(None):
                container.mux(packet)
    return path
