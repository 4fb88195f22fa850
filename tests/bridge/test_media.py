"""The media layer against real footage: exact probing, exact ranges, safe writers."""

from __future__ import annotations

import dataclasses
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import bridge.media.decode as decode_module
from bridge.media import (
    ClipInfo,
    MediaError,
    check_output_writable,
    frames_to_timecode,
    offset_timecode,
    open_writer,
    parse_frame_range,
    parse_output_spec,
    probe,
    read_frames,
    timecode_to_frames,
)
from bridge.media.colour import frame_to_rgb

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CARPHONE = REPO / "media" / "carphone_pristine.mp4"
SHARED_MEDIA = REPO.parent / "shared" / "media"
NTSC = Fraction(30000, 1001)


def shared(name: str) -> Path:
    path = SHARED_MEDIA / name
    if not path.exists():
        pytest.skip(f"shared test footage {path} is not available")
    return path


@pytest.fixture(scope="module")
def carphone() -> Path:
    if SHIPPED_CARPHONE.exists():
        return SHIPPED_CARPHONE
    return shared("carphone_pristine.mp4")


@pytest.fixture(scope="module")
def carphone_frames(carphone: Path) -> list[np.ndarray]:
    """Every frame decoded from the start: the reference for exactness."""
    return list(read_frames(carphone, 0, 119))


@pytest.fixture(scope="module")
def bikes_frames() -> list[np.ndarray]:
    return list(read_frames(shared("bikes.mp4"), 0, 249))


def plain_decode(path: Path) -> list[np.ndarray]:
    """Decode with bare PyAV from the start: no seeking, only the same RGB conversion."""
    with av.open(str(path)) as container:
        return [frame_to_rgb(frame) for frame in container.decode(video=0)]


# --- probe ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size", "rate", "count"),
    [
        ("bikes.mp4", (640, 272), Fraction(25), 250),
        ("carphone_pristine.mp4", (176, 144), NTSC, 120),
        ("bigbuckbunny.mp4", (1280, 720), Fraction(25), 132),
    ],
)
def test_probe_shared_clips(name: str, size: tuple[int, int], rate: Fraction, count: int) -> None:
    info = probe(shared(name))
    assert (info.width, info.height) == size
    assert info.frame_rate == rate and isinstance(info.frame_rate, Fraction)
    assert info.frame_count == count
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.start_timecode is None


def test_probe_shipped_carphone_keeps_ntsc_rate_exact(carphone: Path) -> None:
    info = probe(carphone)
    assert info.frame_rate == Fraction(30000, 1001)
    assert info.time_base == Fraction(1, 30000)
    assert info.frame_count == 120


def test_probe_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not exist: check the path"):
        probe(tmp_path / "nope.mp4")


def test_probe_text_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError, match="pick a video file"):
        probe(text)


def test_probe_directory(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="is a folder"):
        probe(tmp_path)


def test_probe_audio_only(tmp_path: Path) -> None:
    audio = tmp_path / "tone.wav"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        samples = (np.sin(np.arange(8000) / 8) * 8000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    with pytest.raises(MediaError, match="has no video stream: pick a video file"):
        probe(audio)


RUNNING_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def deny_access(monkeypatch: pytest.MonkeyPatch, module: object, denied: Path) -> None:
    """Root ignores permission bits, so make os.access report what a user would see."""
    real = os.access
    monkeypatch.setattr(module.os, "access", lambda p, mode: False if Path(p) == denied else real(p, mode))


def test_probe_unreadable(tmp_path: Path, carphone: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bridge.media.clip as clip_module

    locked = tmp_path / "locked.mp4"
    locked.write_bytes(carphone.read_bytes())
    locked.chmod(0)
    if RUNNING_AS_ROOT:
        deny_access(monkeypatch, clip_module, locked)
    with pytest.raises(MediaError, match="permission denied"):
        probe(locked)


# --- frame ranges -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(None, (0, 119)), ("10:29", (10, 29)), ("10:", (10, 119)), (":29", (0, 29)), (":", (0, 119)), (" 5 : 5 ", (5, 5))],
)
def test_parse_frame_range(spec: str | None, expected: tuple[int, int]) -> None:
    assert parse_frame_range(spec, 120) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("29:10", "empty"),
        ("10:120", "keep it within 0:119"),
        ("200:", "empty|within 0:119"),
        ("abc", "not FIRST:LAST"),
        ("10", "not FIRST:LAST"),
        ("-1:5", "not FIRST:LAST"),
        ("1.5:3", "not FIRST:LAST"),
    ],
)
def test_parse_frame_range_errors(spec: str, message: str) -> None:
    with pytest.raises(MediaError, match=message):
        parse_frame_range(spec, 120)


# --- reading ------------------------------------------------------------------------


def test_full_decode_matches_plain_pyav_frame_for_frame(carphone: Path, carphone_frames: list[np.ndarray]) -> None:
    plain = plain_decode(carphone)
    assert len(carphone_frames) == len(plain) == 120
    assert all(np.array_equal(a, b) for a, b in zip(carphone_frames, plain))


def test_range_after_a_cut_equals_full_decode(bikes_frames: list[np.ndarray]) -> None:
    frames = list(read_frames(shared("bikes.mp4"), 140, 150))
    assert len(frames) == 11
    assert frames[0].shape == (272, 640, 3) and frames[0].dtype == np.uint8
    for got, want in zip(frames, bikes_frames[140:151]):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("first", [1, 29, 30, 31, 75, 76, 136, 137, 138, 187, 241, 242, 247])
def test_ranges_around_keyframes_are_exact(bikes_frames: list[np.ndarray], first: int) -> None:
    last = min(first + 2, 249)
    frames = list(read_frames(shared("bikes.mp4"), first, last))
    assert len(frames) == last - first + 1
    assert all(np.array_equal(a, b) for a, b in zip(frames, bikes_frames[first : last + 1]))


def test_carphone_range_equals_full_decode(carphone: Path, carphone_frames: list[np.ndarray]) -> None:
    frames = list(read_frames(carphone, 10, 29))
    assert len(frames) == 20
    assert all(np.array_equal(a, b) for a, b in zip(frames, carphone_frames[10:30]))
    assert [len(list(read_frames(carphone, 119, 119)))] == [1]
    assert np.array_equal(next(read_frames(carphone, 119, 119)), carphone_frames[119])


def test_seek_that_overshoots_is_retried(monkeypatch: pytest.MonkeyPatch, bikes_frames: list[np.ndarray]) -> None:
    """A seek landing after the wanted frame must not shift the range."""
    real = decode_module._index_pts
    # Aim three seconds late: the seek lands on the keyframe at 187 instead of 137.
    monkeypatch.setattr(decode_module, "_index_pts", lambda i, s, tb, r: real(i + 75, s, tb, r))
    frames = list(read_frames(shared("bikes.mp4"), 140, 143))
    assert all(np.array_equal(a, b) for a, b in zip(frames, bikes_frames[140:144]))
    assert len(frames) == 4


def test_read_past_the_end_fails(carphone: Path) -> None:
    with pytest.raises(MediaError, match="ended after 120 frames"):
        list(read_frames(carphone, 115, 125))


def test_read_frames_is_lazy(carphone: Path) -> None:
    frames = read_frames(carphone, 0, 119)
    first = next(frames)
    assert first.shape == (144, 176, 3)
    frames.close()  # closing early releases the file without decoding the rest


# --- writing ------------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "codec", "pix_fmt"), [(".mp4", "h264", "yuv420p"), (".mov", "prores", "yuv422p10le")])
def test_movie_round_trip(
    tmp_path: Path, carphone: Path, carphone_frames: list[np.ndarray], suffix: str, codec: str, pix_fmt: str
) -> None:
    info = probe(carphone)
    out = tmp_path / "deliver" / f"result{suffix}"
    with open_writer(out, info, first_frame=10) as writer:
        for image in read_frames(carphone, 10, 29):
            writer.write(image)
    assert writer.outputs == [out]
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no partial left
    written = probe(out)
    assert written.frame_count == 20
    assert (written.width, written.height) == (176, 144)
    assert written.frame_rate == Fraction(30000, 1001)
    assert written.codec == codec and written.pix_fmt == pix_fmt
    back = list(read_frames(out, 0, 19))
    # Lossy but high quality, and the colours must not shift: compare mean error.
    error = np.mean([np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(back, carphone_frames[10:30])])
    assert error < 3.0


def test_hd_round_trip_keeps_colours(tmp_path: Path) -> None:
    """Untagged HD is read and written as BT.709 and the trip adds no colour bias."""
    source = shared("bigbuckbunny.mp4")
    frames = list(read_frames(source, 60, 62))
    out = tmp_path / "hd.mp4"
    with open_writer(out, probe(source), 60) as writer:
        for image in frames:
            writer.write(image)
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.colorspace == 1  # tagged BT.709
    back = list(read_frames(out, 0, 2))
    difference = np.stack(frames).astype(float) - np.stack(back)
    assert np.all(np.abs(difference.mean(axis=(0, 1, 2))) < 0.5)  # per-channel bias
    assert np.abs(difference).mean() < 2.0


def test_movie_carries_timecode_offset_by_first_frame(tmp_path: Path, carphone: Path) -> None:
    info = dataclasses.replace(probe(carphone), start_timecode="01:00:59;20")
    out = tmp_path / "tc.mov"
    with open_writer(out, info, first_frame=10) as writer:
        for image in read_frames(carphone, 10, 12):
            writer.write(image)
    # 01:00:59;20 + 10 frames crosses a minute in drop-frame: ;00 and ;01 do not exist.
    assert probe(out).start_timecode == "01:01:00;02"


def test_odd_sized_mp4(tmp_path: Path) -> None:
    info = ClipInfo(Path("src.mp4"), 175, 143, Fraction(24000, 1001), 3, Fraction(1, 24000), None, "h264", "yuv420p")
    out = tmp_path / "odd.mp4"
    rng = np.random.default_rng(0)
    with open_writer(out, info, 0) as writer:
        for _ in range(3):
            writer.write(rng.integers(0, 255, (143, 175, 3), dtype=np.uint8))
    written = probe(out)
    assert (written.width, written.height, written.frame_count) == (175, 143, 3)
    assert written.frame_rate == Fraction(24000, 1001)


def test_png_sequence_is_source_numbered_and_exact(tmp_path: Path, carphone: Path, carphone_frames: list[np.ndarray]) -> None:
    info = probe(carphone)
    out = tmp_path / "frames"
    out.mkdir()
    with open_writer(out, info, first_frame=10) as writer:
        for image in read_frames(carphone, 10, 29):
            writer.write(image)
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{n:06d}.png" for n in range(10, 30)]
    assert writer.outputs == [out / name for name in names]
    from PIL import Image

    for n in (10, 17, 29):
        assert np.array_equal(np.asarray(Image.open(out / f"frame_{n:06d}.png")), carphone_frames[n])


def test_tiff_pattern(tmp_path: Path, carphone: Path, carphone_frames: list[np.ndarray]) -> None:
    from PIL import Image

    info = probe(carphone)
    with open_writer(tmp_path / "tif" / "shot_%04d.tif", info, first_frame=118) as writer:
        for image in carphone_frames[118:120]:
            writer.write(image)
    assert [p.name for p in writer.outputs] == ["shot_0118.tif", "shot_0119.tif"]
    assert np.array_equal(np.asarray(Image.open(writer.outputs[1])), carphone_frames[119])


def test_abort_leaves_nothing(tmp_path: Path, carphone: Path, carphone_frames: list[np.ndarray]) -> None:
    info = probe(carphone)
    for out in (tmp_path / "a.mp4", tmp_path / "b.mov", tmp_path / "seq" / "f_%03d.png"):
        writer = open_writer(out, info, 0)
        for image in carphone_frames[:3]:
            writer.write(image)
        writer.abort()
        assert writer.outputs == []
    assert list(tmp_path.iterdir()) == []  # the folder it made went too


@pytest.mark.parametrize("out", ["result.mp4", "result.mov", "seq/"])
def test_failure_inside_with_leaves_no_final_file(tmp_path: Path, carphone: Path, carphone_frames: list[np.ndarray], out: str) -> None:
    info = probe(carphone)
    with pytest.raises(RuntimeError, match="engine crashed"):
        with open_writer(f"{tmp_path}/{out}", info, 0) as writer:
            for n, image in enumerate(carphone_frames[:5]):
                if n == 3:
                    raise RuntimeError("engine crashed")
                writer.write(image)
    assert list(tmp_path.iterdir()) == []


def test_wrong_frame_size_is_refused_and_aborts(tmp_path: Path, carphone: Path) -> None:
    info = probe(carphone)
    writer = open_writer(tmp_path / "x.mp4", info, 0)
    with pytest.raises(MediaError, match=r"takes \(144, 176, 3\) uint8"):
        writer.write(np.zeros((100, 100, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_closing_an_empty_writer_fails_cleanly(tmp_path: Path, carphone: Path) -> None:
    writer = open_writer(tmp_path / "x.mov", probe(carphone), 0)
    with pytest.raises(MediaError, match="No frames were written"):
        writer.close()
    assert list(tmp_path.iterdir()) == []


# --- output specs -------------------------------------------------------------------


def test_output_specs(tmp_path: Path) -> None:
    assert parse_output_spec(tmp_path / "a.MP4").preset.name == "h264"
    assert parse_output_spec(tmp_path / "a.mov").preset.name == "prores_422_hq"
    assert parse_output_spec(tmp_path).path == tmp_path / "frame_%06d.png"
    assert parse_output_spec(f"{tmp_path}/new/").path == tmp_path / "new" / "frame_%06d.png"
    assert parse_output_spec(tmp_path / "f_%d.tiff").kind == "images"


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("clip.avi", "use .mp4, .mov, or an image-sequence pattern"),
        ("clip", "use .mp4, .mov, or an image-sequence pattern"),
        ("frame.png", "add a frame-number pattern"),
        ("f_%04d.jpg", "use .png, .tif, .tiff or .exr"),
        ("f_%04d_%04d.png", "exactly one frame-number pattern"),
        ("dir%03d/f.png", "folder name"),
    ],
)
def test_bad_output_specs(tmp_path: Path, out: str, message: str) -> None:
    with pytest.raises(MediaError, match=message):
        check_output_writable(tmp_path / out)


def test_output_folder_checks(tmp_path: Path) -> None:
    check_output_writable(tmp_path / "not" / "yet" / "there.mp4")  # creatable is fine
    assert not (tmp_path / "not").exists()  # and the check creates nothing
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(MediaError, match="is a file"):
        check_output_writable(blocker / "out.mp4")
    (tmp_path / "film.mp4").mkdir()
    with pytest.raises(MediaError, match="existing folder"):
        check_output_writable(tmp_path / "film.mp4")


def test_output_folder_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bridge.media.writers as writers_module

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if RUNNING_AS_ROOT:
        deny_access(monkeypatch, writers_module, locked)
    try:
        with pytest.raises(MediaError, match="not writable"):
            check_output_writable(locked / "out.mov")
    finally:
        locked.chmod(0o700)


# --- timecode -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "frames", "rate", "expected"),
    [
        ("00:00:59;29", 1, NTSC, "00:01:00;02"),
        ("00:09:59;29", 1, NTSC, "00:10:00;00"),
        ("01:00:00;00", 17982, NTSC, "01:10:00;00"),  # ten minutes of 29.97 drop-frame
        ("00:00:59:29", 1, NTSC, "00:01:00:00"),  # non-drop at 29.97 counts every number
        ("10:00:00:24", 1, Fraction(25), "10:00:01:00"),
        ("23:59:59:24", 1, Fraction(25), "00:00:00:00"),
    ],
)
def test_offset_timecode(start: str, frames: int, rate: Fraction, expected: str) -> None:
    assert offset_timecode(start, frames, rate) == expected


def test_drop_frame_round_trips_over_a_day() -> None:
    for number in range(0, 24 * 107892, 997):
        timecode = frames_to_timecode(number, NTSC, drop_frame=True)
        assert timecode_to_frames(timecode, NTSC) == (number, True)
