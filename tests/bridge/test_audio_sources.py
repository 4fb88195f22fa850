"""Sources whose audio is awkward: AC-3 as cameras record it, AC-3 packets that do not start on a
codec frame (the decoder rejects them until the parser re-splits them), and audio packets that
no decoder accepts. The picture is always exported; the audio is carried when it can be and left
out with one clear warning when it cannot (issue 20, item 18)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
import pytest

from bridge import media
from bridge.media.writers import MovieWriter
from cli.main import main

RATE = Fraction(24000, 1001)
FRAMES = 24


def _ac3_bytes(seconds: float) -> bytes:
    encoder = av.CodecContext.create("ac3", "w")
    assert isinstance(encoder, av.audio.codeccontext.AudioCodecContext)
    encoder.sample_rate, encoder.layout, encoder.format = 48000, "stereo", "fltp"
    encoder.open()
    t = np.arange(round(48000 * seconds), dtype=np.float32) / 48000
    tone = np.stack([np.sin(2 * np.pi * 440 * t)] * 2).astype(np.float32) * 0.5
    frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="stereo")
    frame.sample_rate, frame.pts = 48000, 0
    return b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)])


def _clip(path: Path, audio: bytes, chunk: int | None) -> Path:
    """MPEG-4 video with an AC-3 stream made of `audio` cut into `chunk`-byte packets (None: as encoded)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=RATE)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("ac3", rate=48000, layout="stereo")
        for i in range(FRAMES):
            picture = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10, np.uint8), format="rgb24")
            picture.pts = i
            for packet in video.encode(picture):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        step = chunk or 1536  # an AC-3 frame at 48 kHz / 448 kb/s is 1792 bytes; any cut will do
        for k in range(0, len(audio), step):
            packet = av.Packet(audio[k:k + step])
            packet.stream, packet.time_base = sound, Fraction(1, 48000)
            packet.pts = packet.dts = round(k / len(audio) * 48000 * FRAMES / float(RATE))
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio-sources")
    seconds = FRAMES / float(RATE)
    ac3 = _ac3_bytes(seconds)
    rng = np.random.default_rng(5)
    return {
        "ac3": _clip(folder / "camera.avi", ac3, None),
        "split_ac3": _clip(folder / "split.mkv", ac3, 700),  # the decoder rejects these as they are
        "corrupt": _clip(folder / "corrupt.mkv", rng.integers(0, 256, len(ac3), dtype=np.uint8).tobytes(), 1000),
    }


def _export(tmp_path: Path, clip: Path, name: str, audio: bool = True) -> MovieWriter:
    info = media.probe(clip)
    writer = media.open_writer(tmp_path / name, info, 0, audio=audio)
    assert isinstance(writer, MovieWriter)
    with writer:
        for image in media.read_frames(clip, 0, info.frame_count - 1):
            writer.write(image)
    return writer


def _audio_level(path: Path) -> tuple[float, float]:
    """(seconds of audio, RMS level) of a file's first audio stream."""
    with av.open(str(path)) as container:
        frames = list(container.decode(container.streams.audio[0]))
        rate = container.streams.audio[0].codec_context.sample_rate
    values = np.concatenate([f.to_ndarray().astype(np.float64).ravel() for f in frames])
    kind = frames[0].to_ndarray().dtype
    if np.issubdtype(kind, np.integer):
        values /= np.iinfo(kind).max
    return sum(f.samples for f in frames) / rate, float(np.sqrt(np.mean(values**2)))


@pytest.mark.parametrize("source", ["ac3", "split_ac3"])
@pytest.mark.parametrize("name", ["out.mov", "out.mp4"])
def test_ac3_audio_is_carried(clips, tmp_path, source, name):
    writer = _export(tmp_path, clips[source], name)
    assert writer.warnings == []
    seconds, level = _audio_level(tmp_path / name)
    assert seconds == pytest.approx(FRAMES / float(RATE), abs=0.03)
    assert level > 0.2  # the tone (RMS 0.35), not silence


def test_the_parser_route_is_taken_only_when_packets_need_it(clips):
    from bridge.media.audio_check import check_audio

    assert check_audio(clips["ac3"]) == check_audio(clips["ac3"]).__class__("direct")
    split = check_audio(clips["split_ac3"])
    assert split is not None and split.route == "parse"


@pytest.mark.parametrize("name", ["out.mov", "out.mp4"])
def test_undecodable_audio_exports_the_picture_alone_with_one_warning(clips, tmp_path, name):
    writer = _export(tmp_path, clips["corrupt"], name)
    assert len(writer.warnings) == 1 and "ac3 audio cannot be decoded" in writer.warnings[0]
    written = media.probe(tmp_path / name)
    assert written.audio is None and written.frame_count == FRAMES
    assert not list(tmp_path.glob(".*partial*"))


def test_probe_says_when_the_audio_cannot_be_decoded(clips, capsys):
    assert media.probe(clips["split_ac3"]).audio.problem is None  # type: ignore[union-attr]
    assert main(["probe", str(clips["corrupt"])]) == 0
    out = capsys.readouterr().out
    assert "ac3" in out and "cannot be decoded" in out and "picture only" in out


def test_no_audio_asked_up_front(clips, tmp_path):
    writer = _export(tmp_path, clips["ac3"], "quiet.mov", audio=False)
    assert writer.warnings == [] and media.probe(tmp_path / "quiet.mov").audio is None


def test_a_failing_encoder_is_named_not_the_disk(clips, tmp_path, monkeypatch):
    info = media.probe(clips["ac3"])
    writer = media.open_writer(tmp_path / "x.mov", info, 0)

    def broken(image):
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input", "encode")

    monkeypatch.setattr(writer, "_write", broken)
    with pytest.raises(media.MediaError) as caught:
        writer.write(np.zeros((48, 64, 3), np.uint8))
    assert "ProRes" in str(caught.value) and "disk" not in str(caught.value)
    assert not (tmp_path / "x.mov").exists() and not list(tmp_path.glob(".*partial*"))
