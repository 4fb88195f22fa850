"""Every export preset, read back by PyAV or OpenEXR: count, size, exact rate, start
timecode, numbering, bit depth, audio and colour tags, on the shipped clip and on
clips made here (30000/1001 with timecode, 25 fps with audio, variable rate with gaps).
Plus the writer's safety: nothing half-written, nothing replaced that it did not make.
"""

from __future__ import annotations

import functools
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import OpenEXR
import pytest

from bridge.media import MediaError, offset_timecode, open_writer, probe, read_frames
from bridge.media.colour import frame_to_rgb
from bridge.media.presets import PRESETS
from tests.bridge.clips import NTSC, make_clip, picture_number

FIRST, LAST = 3, 10  # the exported range: 8 frames
COUNT = LAST - FIRST + 1
MOVIES = [name for name, p in PRESETS.items() if p.is_movie]
SEQUENCES = [name for name, p in PRESETS.items() if not p.is_movie]


@pytest.fixture(scope="module")
def clips(tmp_path_factory, shipped_clip) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sources")
    return {
        "shipped": shipped_clip,
        # Large enough for DNxHR; PCM audio, so the export's samples can be compared exactly.
        "ntsc_tc": make_clip(folder / "ntsc_tc.mov", rate=NTSC, pictures=16, size=(256, 128),
                             timecode="01:00:59;20", audio_rate=48000, audio_codec="pcm_s16le"),
        "pal_audio": make_clip(folder / "pal_audio.mp4", rate=Fraction(25), pictures=16, audio_rate=48000),
        # Pictures at slots 0-3, 6-8, 12-16: gaps of 2 and 3 frames.
        "vfr_gaps": make_clip(folder / "vfr_gaps.mp4", rate=Fraction(30),
                              slots=[0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 16]),
    }


def _float_frames(source: Path) -> list[np.ndarray]:
    """The range as float RGB, as the engine hands it over, plus a ramp finer than 8 bits
    across each picture so a writer that went through 8 bits would lose it."""
    frames = []
    for image in read_frames(source, FIRST, LAST):
        height, width, _ = image.shape
        ramp = np.linspace(0.0, 3.0 / 255.0, width, dtype=np.float32)[None, :, None]
        frames.append(image.astype(np.float32) / 255.0 + ramp)
    return frames


def _write(out: str | Path, source: Path, preset: str, **kw) -> list[Path]:
    info = probe(source)
    with open_writer(out, info, FIRST, preset=preset, **kw) as writer:
        for image in _float_frames(source):
            writer.write(image)
    return writer.outputs


def _source_pictures(source: Path) -> list[int]:
    """Which source picture each frame FIRST..LAST shows: the grey code of the made clips,
    or for real footage the source frame each one looks most like."""
    return [_identify(source, image) for image in read_frames(source, FIRST, LAST)]


@functools.lru_cache(maxsize=4)
def _neighbourhood(source: Path) -> list[np.ndarray]:
    return list(read_frames(source, FIRST - 2, LAST + 2))


def _identify(source: Path, image: np.ndarray) -> int:
    if source.name != "carphone_pristine.mp4":
        return picture_number(image)
    candidates = _neighbourhood(source)
    errors = [np.abs(image.astype(float) - c).mean() for c in candidates]
    return FIRST - 2 + int(np.argmin(errors))


def _pcm(path: Path) -> tuple[np.ndarray, int]:
    """All audio as float channels x samples."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout.name, rate=stream.sample_rate)
        chunks = [f.to_ndarray() for frame in container.decode(stream) for f in resampler.resample(frame)]
        return np.concatenate(chunks, axis=1), stream.sample_rate


@pytest.mark.parametrize("preset", MOVIES)
@pytest.mark.parametrize("source", ["shipped", "ntsc_tc", "pal_audio", "vfr_gaps"])
def test_movie_presets_read_back_exactly(clips, tmp_path, preset, source):
    spec = PRESETS[preset]
    clip = clips[source]
    info = probe(clip)
    out = tmp_path / f"out{spec.extension}"
    if info.width < spec.min_size[0] or info.height < spec.min_size[1]:
        with pytest.raises(MediaError, match="needs pictures of at least 256x120"):
            _write(out, clip, preset)
        assert list(tmp_path.iterdir()) == []
        return
    assert _write(out, clip, preset) == [out]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no partial left

    written = probe(out, scan=True)
    assert (written.frame_count, written.width, written.height) == (COUNT, info.width, info.height)
    assert written.frame_rate == info.frame_rate  # exact: 30000/1001 stays 30000/1001
    assert not written.variable_rate  # a variable-rate source comes out conformed
    if source == "ntsc_tc":
        assert written.start_timecode == "01:00:59;23"  # the source's, moved to frame 3
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == {"libx264": "h264", "prores_ks": "prores", "dnxhd": "dnxhd"}[spec.codec]
        pictures = [frame for frame in container.decode(video)]
    # Numbering: the movie's frames show the source's frames FIRST..LAST (holds included).
    back = [_identify(clip, frame_to_rgb(frame)) for frame in pictures]
    assert back == _source_pictures(clip)
    # Bit depth: the ramp of 3/255 across each picture spans about ten 10-bit luma codes
    # but at most four 8-bit ones, so more than five codes prove no 8-bit intermediate.
    row = pictures[0].to_ndarray(format="gray16le")[info.height // 2]
    codes = len(np.unique(row >> 6))
    if spec.bit_depth > 8:
        assert pictures[0].format.name.endswith(("10le", "12le"))
        assert codes > 5
    else:
        assert pictures[0].format.name == "yuv420p"

    if info.audio is None:
        assert written.audio is None
        return
    assert written.audio is not None and written.audio.sample_rate == info.audio.sample_rate
    duration = Fraction(COUNT) / info.frame_rate
    # PCM to the sample; AAC as its muxer rounds the last packet (a few samples).
    tolerance = 1 / 48000 if spec.audio_codec == "pcm" else 0.001
    assert written.audio.duration_s == pytest.approx(float(duration), abs=tolerance)
    exported, rate = _pcm(out)
    source_audio, _ = _pcm(clip)
    start = round(Fraction(FIRST) / info.frame_rate * rate)
    expected = source_audio[:, start:start + round(duration * rate)]
    if spec.audio_codec == "pcm":
        assert written.audio.codec == ("pcm_s16le" if info.audio.sample_format.startswith("s16") else "pcm_s24le")
        # Sample-exact and in sync: the source's samples from frame FIRST's instant.
        assert exported.shape == expected.shape
        assert np.abs(exported - expected).max() < 1e-4
    else:
        assert written.audio.codec == "aac"
        # AAC is lossy: in sync means the best match is at the right offset.
        best = min(range(-400, 401, 1), key=lambda d: np.mean((source_audio[0, start + d:start + d + 4096]
                                                               - exported[0, :4096]) ** 2))
        assert best == 0


def test_movie_colour_tags_follow_the_source(tmp_path):
    """A small clip tagged BT.709 full range stays BT.709 (not the SD default) and full range in H.264."""
    clip = make_clip(tmp_path / "tagged.mp4", pictures=12, colour=(1, 1, 1, 2))
    for preset, full in (("h264", True), ("prores_422_hq", False)):
        out = tmp_path / f"o{PRESETS[preset].extension}"
        _write(out, clip, preset)
        with av.open(str(out)) as container:
            context = container.streams.video[0].codec_context
            assert (context.colorspace, context.color_primaries, context.color_trc) == (1, 1, 1)
            assert context.color_range == (2 if full else 1)
        # No range or matrix shift: the export decodes to the same pictures as the source.
        back = np.stack(list(read_frames(out, 0, COUNT - 1))).astype(float)
        source = np.stack(list(read_frames(clip, FIRST, LAST))).astype(float)
        assert np.abs(back.mean(axis=(1, 2, 3)) - source.mean(axis=(1, 2, 3))).max() < 2.5


def test_exr_chromaticities_follow_the_source(tmp_path):
    clip = make_clip(tmp_path / "tagged.mp4", pictures=12, colour=(1, 1, 1, 1))
    (path, *_) = _write(f"{tmp_path}/seq/", clip, "exr_half")
    with OpenEXR.File(str(path)) as exr:
        red_x, red_y = exr.header()["chromaticities"][:2]
    assert (red_x, red_y) == pytest.approx((0.64, 0.33))  # BT.709, as tagged


def test_untagged_small_clip_is_tagged_with_the_editors_assumption(tmp_path, clips):
    out = tmp_path / "o.mov"
    _write(out, clips["shipped"], "prores_422_hq")
    colour = probe(out).colour
    assert (colour.matrix, colour.primaries, colour.transfer, colour.full_range) == (6, 6, 6, False)
    assert colour.assumed == ()  # tagged now, so nobody has to assume


@pytest.mark.parametrize("preset", SEQUENCES)
@pytest.mark.parametrize("source", ["shipped", "ntsc_tc", "vfr_gaps"])
def test_sequence_presets_read_back_exactly(clips, tmp_path, preset, source):
    spec = PRESETS[preset]
    clip = clips[source]
    info = probe(clip)
    outputs = _write(f"{tmp_path}/seq/", clip, preset)
    names = [f"frame_{n:06d}{spec.extension}" for n in range(FIRST, LAST + 1)]
    assert [p.name for p in outputs] == names  # source frame numbers, fixed padding
    assert sorted(p.name for p in (tmp_path / "seq").iterdir()) == names  # no staging folder left
    expected_pictures = _source_pictures(clip)
    for path, picture in zip(outputs, expected_pictures):
        if spec.codec == "exr":
            with OpenEXR.File(str(path)) as exr:  # header and pixels live only while it is open
                pixels = exr.channels()["RGB"].pixels.copy()
                header = dict(exr.header())
            assert pixels.dtype == np.float16 and pixels.shape == (info.height, info.width, 3)
            assert header["framesPerSecond"] == info.frame_rate
            # The made clips and carphone are untagged and small: SMPTE 170M primaries, not Rec.709.
            assert header["chromaticities"][:2] == pytest.approx((0.630, 0.340))
            if source == "ntsc_tc":  # each file knows its source timecode (01:00:59;20 + frame number)
                code = header["timeCode"]
                text = f"{code.hours:02d}:{code.minutes:02d}:{code.seconds:02d};{code.frame:02d}"
                assert code.dropFrame and text == offset_timecode("01:00:59;20", int(path.stem.split("_")[-1]), NTSC)
            else:
                assert "timeCode" not in header
            rgb = pixels.astype(np.float32)
            off_grid = np.abs(rgb * 255 - np.rint(rgb * 255))
            assert np.mean(off_grid > 0.15) > 0.3  # between 8-bit levels: written from float
            assert _identify(clip, np.rint(rgb * 255)) == picture
            continue
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (info.width, info.height)
        if spec.bit_depth == 16:
            assert frame.format.name in ("rgb48be", "rgb48le")
            pixels = frame.to_ndarray()
            assert pixels.dtype == np.uint16
            assert np.any(pixels % 257 != 0)  # written from float, not widened from 8 bits
            assert _identify(clip, pixels / 257.0) == picture
        else:
            assert frame.format.name == "rgb24"
            assert _identify(clip, frame.to_ndarray()) == picture


def test_sequence_start_number(clips, tmp_path):
    outputs = _write(tmp_path / "shot_%04d.exr", clips["pal_audio"], "exr_half", start_number=1001)
    assert [p.name for p in outputs] == [f"shot_{n}.exr" for n in range(1001, 1001 + COUNT)]


# --- safety ---------------------------------------------------------------------------


@pytest.mark.parametrize("out", ["x.mov", "seq/f_%04d.png"])
def test_existing_files_are_never_replaced_unless_asked(clips, tmp_path, out):
    clip = clips["shipped"]
    target = tmp_path / (out if out.endswith(".mov") else "seq/f_0005.png")
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(b"the user's file")
    with pytest.raises(MediaError, match="already exists and is not replaced"):
        open_writer(tmp_path / out, probe(clip), FIRST, frame_count=COUNT)
    assert target.read_bytes() == b"the user's file"
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
    _write(tmp_path / out, clip, None, overwrite=True)
    assert target.read_bytes() != b"the user's file"


@pytest.mark.parametrize("out", ["x.mov", "seq/f_%04d.tif"])
def test_a_file_appearing_during_the_job_is_kept_and_the_job_fails(clips, tmp_path, out):
    clip = clips["shipped"]
    info = probe(clip)
    writer = open_writer(tmp_path / out, info, FIRST)
    for image in read_frames(clip, FIRST, LAST):
        writer.write(image)
    intruder = tmp_path / ("x.mov" if out == "x.mov" else "seq/f_0007.tif")
    intruder.write_bytes(b"made meanwhile")
    with pytest.raises(MediaError, match="not replaced"):
        writer.close()
    assert intruder.read_bytes() == b"made meanwhile"
    # All or nothing: no other frame of the sequence, no partial, no staging folder.
    assert sorted(p.name for p in intruder.parent.iterdir()) == [intruder.name]


@pytest.mark.parametrize("preset", ["dnxhr_hqx", "exr_half"])
def test_cancel_midway_leaves_nothing(clips, tmp_path, preset):
    clip = clips["ntsc_tc"]
    out = tmp_path / "deliver" / ("x.mov" if PRESETS[preset].is_movie else "f_%06d.exr")
    writer = open_writer(out, probe(clip), FIRST)
    for image in list(read_frames(clip, FIRST, LAST))[:4]:
        writer.write(image)
    visible = [p.name for p in out.parent.iterdir()]
    assert visible and all(name.startswith(".") and "partial" in name for name in visible)  # hidden, never final
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_finished_movie_has_ordinary_permissions(clips, tmp_path):
    out = tmp_path / "x.mov"
    _write(out, clips["shipped"], "prores_422_hq")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
