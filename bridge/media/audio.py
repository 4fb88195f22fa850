"""The source's audio for the exported range, sample-exact and in sync with the picture.

The export's time 0 is the source's video time `start_s + first / rate`; the audio
written is the source's audio from that instant for exactly the range's duration
(n_frames / rate), cut at the sample, with silence where the source has none (audio
that starts late, or gaps). It is decoded and re-encoded rather than packet-copied
because packets (1024 samples of AAC, ~21 ms) cannot be cut at a frame boundary: to
24-bit PCM in QuickTime (lossless; 16-bit sources stay 16-bit), to AAC in MP4, where
PCM is not widely readable.

`AudioTrack.write_until(t)` is called as picture frames are written, so the muxer
receives audio and video interleaved.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import av.audio.codeccontext
import av.audio.stream
import av.container
import av.error
import numpy as np

from bridge.media.audio_check import AudioRoute, audio_decoder, check_audio
from bridge.media.clip import stream_time_base
from bridge.media.errors import MediaError

_AAC_BITRATE = 320_000


def _pcm_codec(source_format: str) -> tuple[str, str]:
    """(encoder, planar sample format to slice in) keeping the source's precision."""
    if source_format in ("s16", "s16p", "u8", "u8p"):
        return "pcm_s16le", "s16p"
    return "pcm_s24le", "s32p"


class AudioTrack:
    """Copies a file's first audio stream from `start_s` (source seconds) into a container."""

    def __init__(self, output: av.container.OutputContainer, source: Path, codec: str, start_s: Fraction,
                 route: AudioRoute = "direct") -> None:
        self._route = route
        self.skipped_packets = 0  # packets the decoder rejected mid-stream; silence stands in for them
        self._input = av.open(str(source), mode="r")
        try:
            in_stream = self._input.streams.audio[0]
            context = in_stream.codec_context
            self.sample_rate = context.sample_rate
            layout = context.layout.name if context.layout and context.layout.name else (
                "stereo" if context.channels == 2 else "mono")
            if codec == "aac":
                encoder, self._slice_format = "aac", "fltp"
            else:
                encoder, self._slice_format = _pcm_codec(context.format.name if context.format else "s16")
            stream = output.add_stream(encoder, rate=self.sample_rate, layout=layout)
            # PyAV types add_stream by codec-name literals; an audio encoder's name gives an audio stream.
            assert isinstance(stream, av.audio.stream.AudioStream)
            self.stream = stream
            if encoder == "aac":
                self.stream.codec_context.bit_rate = _AAC_BITRATE
            self.stream.codec_context.time_base = Fraction(1, self.sample_rate)
            self._encoder_format = self.stream.codec_context.format.name if encoder != "aac" else "fltp"
            self._layout = layout
            self._resampler = av.AudioResampler(format=self._slice_format, layout=layout, rate=self.sample_rate)
            self._output = output
            self._in_stream = in_stream
            self._start = start_s
            self._pending: np.ndarray | None = None  # decoded samples starting at sample `written`
            self.written = 0  # samples handed to the encoder
            self._encoded = 0  # samples the encoder has been given, for frame pts
            seek_to = start_s - 1  # a second early: decoders need a lead-in, the excess is cut
            if seek_to > 0:
                self._input.seek(int(seek_to / stream_time_base(in_stream, source)), stream=in_stream, backward=True)
            self._frames = self._decoded()
            self._fifo = av.AudioFifo()
            self._frame_size = self.stream.codec_context.frame_size or 0
        except BaseException:
            self._input.close()
            raise

    def _decoded(self):
        for frame in self._source_frames():
            for converted in self._resampler.resample(frame):
                yield converted
        for converted in self._resampler.resample(None):
            yield converted

    def _source_frames(self):
        """The source's audio frames, packet by packet. Packets the decoder rejects are handed to
        the codec's parser from then on (they may not start on a codec frame); one that neither
        decodes costs its own samples (the next timestamps put silence there), not the export."""
        parser = self._parser() if self._route == "parse" else None
        for packet in self._input.demux(self._in_stream):
            try:
                frames = packet.decode() if parser is None else self._parsed(parser, packet)
            except av.error.FFmpegError:
                if parser is not None:
                    self.skipped_packets += 1
                    continue
                parser = self._parser()
                try:
                    frames = self._parsed(parser, packet)
                except av.error.FFmpegError:
                    self.skipped_packets += 1
                    continue
            yield from frames

    def _parser(self) -> av.audio.codeccontext.AudioCodecContext:
        return audio_decoder(self._in_stream.codec_context.name)

    def _parsed(self, decoder: av.audio.codeccontext.AudioCodecContext, packet: av.Packet) -> list[av.AudioFrame]:
        """Frames of a packet re-split by the codec's parser, timed from the packet's own timestamp
        (a parsed packet carries none), so the range is still cut at the right sample."""
        frames: list[av.AudioFrame] = []
        parsed = decoder.parse(bytes(packet)) if packet.size else decoder.parse(None)
        for part in [*parsed, *([None] if not packet.size else [])]:
            frames += [f for f in decoder.decode(part) if isinstance(f, av.AudioFrame)]
        if packet.pts is not None and packet.time_base is not None:
            at = Fraction(packet.pts) * Fraction(packet.time_base)
            for frame in frames:
                frame.pts, frame.time_base = round(at * frame.sample_rate), Fraction(1, frame.sample_rate)
                at += Fraction(frame.samples, frame.sample_rate)
        return frames

    def _emit(self, samples: np.ndarray) -> None:
        """Queue planar samples (channels x n) for the encoder."""
        if samples.shape[1] == 0:
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format=self._slice_format, layout=self._layout)
        frame.sample_rate = self.sample_rate
        self._fifo.write(frame)
        self.written += samples.shape[1]
        self._drain(final=False)

    def _drain(self, final: bool) -> None:
        size = self._frame_size
        while self._fifo.samples and (final or size == 0 or self._fifo.samples >= size):
            take = self._fifo.samples if size == 0 else min(size, self._fifo.samples)
            frame = self._fifo.read(take)
            assert frame is not None, "the FIFO holds at least `take` samples, so it returns a frame"
            frame.pts = self._encoded
            frame.time_base = Fraction(1, self.sample_rate)
            self._encoded += frame.samples
            for packet in self.stream.encode(frame):
                self._output.mux(packet)

    def _next_aligned(self) -> np.ndarray | None:
        """The next decoded samples, padded or cut so they start at sample `written`."""
        frame = next(self._frames, None)
        if frame is None:
            return None
        samples = frame.to_ndarray()
        if frame.pts is None or frame.time_base is None:  # no timing: take it as contiguous
            return samples
        at = round((Fraction(frame.pts) * Fraction(frame.time_base) - self._start) * self.sample_rate)
        gap = at - self.written
        if abs(gap) <= 1:  # timestamps rounded to the sample: contiguous
            return samples
        if gap > 0:  # the source has no audio here: silence keeps the rest in sync
            return np.concatenate([np.zeros((samples.shape[0], gap), dtype=samples.dtype), samples], axis=1)
        return samples[:, -gap:]

    def write_until(self, seconds: Fraction) -> None:
        """Encode the export's audio up to `seconds` after its start."""
        wanted = round(seconds * self.sample_rate)
        while self.written < wanted:
            if self._pending is None or self._pending.shape[1] == 0:
                self._pending = self._next_aligned()
                if self._pending is None:
                    # The source's audio ends early: the rest of the range is silence.
                    channels = len(av.AudioLayout(self._layout).channels)
                    self._pending = np.zeros((channels, wanted - self.written), dtype=self._dtype())
                    self._frames = iter(())
                continue
            take = min(self._pending.shape[1], wanted - self.written)
            self._emit(self._pending[:, :take])
            self._pending = self._pending[:, take:]

    def _dtype(self) -> np.dtype:
        return {"s16p": np.int16, "s32p": np.int32, "fltp": np.float32}[self._slice_format]

    def finish(self, seconds: Fraction) -> None:
        """Write the audio up to `seconds` (the picture's duration) and flush the encoder."""
        self.write_until(seconds)
        self._drain(final=True)
        for packet in self.stream.encode(None):
            self._output.mux(packet)
        self.close()

    def close(self) -> None:
        self._input.close()


def open_audio(output: av.container.OutputContainer, source: Path | None, codec: str,
               start_s: Fraction, warnings: list[str] | None = None) -> AudioTrack | None:
    """The audio track for an export, or None when there is nothing to carry, or nothing that can
    be: audio that does not decode leaves the picture to be exported alone, with a warning."""
    if not codec or source is None:
        return None
    check = check_audio(source)
    if check is None:
        return None
    if check.route is None:
        if warnings is not None:
            warnings.append(f"The export has no audio: {check.problem}. Its video is complete; "
                            "carry the sound over from the source in your editor.")
        return None
    try:
        return AudioTrack(output, source, codec, start_s, route=check.route)
    except (OSError, av.error.FFmpegError, ValueError) as error:
        raise MediaError(f"The audio of {source} cannot be carried into the export ({error}): "
                         "export with --no-audio, or an image sequence.") from error
