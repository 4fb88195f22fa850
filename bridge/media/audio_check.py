"""Whether a file's audio can be decoded, and how: asked before an export promises to carry it.

Most files decode packet by packet. Some muxers (AVI from cameras and old capture tools
carrying AC-3 or MP3) store audio in chunks that do not start on a codec frame; FFmpeg's
decoder then rejects every packet, and the same bytes decode once the codec's parser has
re-split them into frames. A file whose audio decodes neither way gets its video exported
without audio and one clear warning, never a failed export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import av.audio.codeccontext
import av.error

AudioRoute = Literal["direct", "parse"]
_PACKETS_TRIED = 12  # enough for decoders with a few packets of delay; a few ms of work


@dataclass(frozen=True)
class AudioCheck:
    route: AudioRoute | None  # None: the audio cannot be decoded
    problem: str | None = None  # why, when it cannot


def audio_decoder(codec: str) -> av.audio.codeccontext.AudioCodecContext:
    """A fresh decoder for `codec`, with its parser (`parse`), for the parse route."""
    decoder = av.CodecContext.create(codec, "r")
    # An audio codec's name gives an audio codec context.
    assert isinstance(decoder, av.audio.codeccontext.AudioCodecContext)
    return decoder


def _decodes_directly(path: Path) -> str | None:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = 0
        for n, packet in enumerate(container.demux(stream)):
            frames += len(packet.decode())
            if n >= _PACKETS_TRIED:
                break
        return None if frames else "no audio samples in its first packets"


def _decodes_parsed(path: Path) -> str | None:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        decoder = audio_decoder(stream.codec_context.name)
        frames = 0
        for n, packet in enumerate(container.demux(stream)):
            if packet.size:
                for parsed in decoder.parse(bytes(packet)):
                    frames += len(decoder.decode(parsed))
            if n >= _PACKETS_TRIED:
                break
        return None if frames else "no audio samples in its first packets"


def check_audio(path: Path) -> AudioCheck | None:
    """How the file's first audio stream decodes; None when it has no audio (or cannot be opened)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            codec = container.streams.audio[0].codec_context.name
    except (OSError, av.error.FFmpegError):
        return None
    try:
        problem = _decodes_directly(path)
    except av.error.FFmpegError as error:
        problem = str(error)
    if problem is None:
        return AudioCheck("direct")
    try:
        if _decodes_parsed(path) is None:
            return AudioCheck("parse")
    except (av.error.FFmpegError, ValueError):
        pass
    return AudioCheck(None, f"its {codec} audio cannot be decoded ({problem})")
