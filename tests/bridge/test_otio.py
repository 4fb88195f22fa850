"""OpenTimelineIO: source ranges from timelines made by OTIO and written by hand (Resolve's shape), and the relink."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest

from bridge.editors import otio as bo
from bridge.media import ClipInfo, open_writer, probe

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
NTSC = 30000 / 1001


@pytest.fixture(scope="module")
def tc_movie(tmp_path_factory) -> Path:
    """A 23.976 fps movie whose own timecode starts at 00:59:58:00 (as camera files do)."""
    path = tmp_path_factory.mktemp("tc") / "A001_C002.mov"
    info = ClipInfo(path=path, width=64, height=48, frame_rate=Fraction(24000, 1001), frame_count=0,
                    time_base=Fraction(1, 24000), start_timecode="00:59:58:00", codec="", pix_fmt=None)
    writer = open_writer(str(path), info, 0)
    for n in range(30):
        writer.write(np.full((48, 64, 3), n * 8, dtype=np.uint8))
    writer.close()
    assert probe(path).start_timecode == "00:59:58:00"
    return path


def _otio_timeline(media: Path, *, start: float, rate: float, gap: int, clip_start: int, clip_len: int,
                   url: str | None = None) -> otio.schema.Timeline:
    """Made by OTIO itself: V1 = gap + clip; V2 = a title-less gap; the clip's media starts at `start`."""
    ref = otio.schema.ExternalReference(target_url=url or str(media),
                                        available_range=TR(RT(start, rate), RT(120, rate)))
    clip = otio.schema.Clip(name="carphone", media_reference=ref,
                            source_range=TR(RT(start + clip_start, rate), RT(clip_len, rate)))
    v1 = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    v1.append(otio.schema.Gap(source_range=TR(RT(0, rate), RT(gap, rate))))
    v1.append(clip)
    v2 = otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video)
    v2.append(otio.schema.Gap(source_range=TR(RT(0, rate), RT(200, rate))))
    a1 = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    timeline = otio.schema.Timeline(name="cut")
    timeline.tracks.extend([v1, v2, a1])
    return timeline


# Written by hand in the shape Resolve exports: bare paths, 29.97002997 rates, media starting at
# 01:00:00:00 (108000 frames), an older Clip schema that OTIO upgrades on reading.
RESOLVE_JSON = """{
 "OTIO_SCHEMA": "Timeline.1", "name": "Timeline 1", "global_start_time":
   {"OTIO_SCHEMA": "RationalTime.1", "rate": 29.97002997002997, "value": 108000.0},
 "tracks": {"OTIO_SCHEMA": "Stack.1", "name": "", "children": [
  {"OTIO_SCHEMA": "Track.1", "name": "Video 1", "kind": "Video", "children": [
   {"OTIO_SCHEMA": "Gap.1", "name": "", "source_range": {"OTIO_SCHEMA": "TimeRange.1",
     "start_time": {"OTIO_SCHEMA": "RationalTime.1", "rate": 29.97002997002997, "value": 0.0},
     "duration": {"OTIO_SCHEMA": "RationalTime.1", "rate": 29.97002997002997, "value": 48.0}}},
   {"OTIO_SCHEMA": "Clip.1", "name": "carphone_pristine.mp4", "metadata": {"Resolve_OTIO": {}},
    "source_range": {"OTIO_SCHEMA": "TimeRange.1",
     "start_time": {"OTIO_SCHEMA": "RationalTime.1", "rate": 29.97002997002997, "value": 108037.0},
     "duration": {"OTIO_SCHEMA": "RationalTime.1", "rate": 29.97002997002997, "value": 6.0}},
    "media_reference": {"OTIO_SCHEMA": "ExternalReference.1", "name": "carphone_pristine.mp4",
     "target_url": "MEDIA",
     "available_range": {"OTIO_SCHEMA": "TimeRange.1",
      "start_time": {"OTIO_SCHEMA": "RationalTime.1", "rate": 29.97002997002997, "value": 108000.0},
      "duration": {"OTIO_SCHEMA": "RationalTime.1", "rate": 29.97002997002997, "value": 120.0}}}}
  ]}
 ]}
}"""


def _resolve_file(tmp_path: Path, media: Path) -> Path:
    path = tmp_path / "resolve_export.otio"
    path.write_text(RESOLVE_JSON.replace("MEDIA", str(media)))
    return path


def test_range_from_a_timeline_made_by_otio(shipped_clip, tmp_path):
    timeline = _otio_timeline(shipped_clip, start=0, rate=NTSC, gap=10, clip_start=12, clip_len=20)
    chosen = bo.pick(timeline, "carphone")
    assert (chosen.media, chosen.first, chosen.last, chosen.track_number) == (shipped_clip, 12, 31, 1)
    assert chosen.frame_rate == Fraction(30000, 1001)


def test_range_from_a_hand_written_resolve_export(shipped_clip, tmp_path):
    timeline = bo.read_timeline(_resolve_file(tmp_path, shipped_clip))
    chosen = bo.pick(timeline, "carphone_pristine.mp4")
    assert (chosen.first, chosen.last) == (37, 42)  # 108037 - 108000, six frames


def test_file_urls_and_relative_paths(shipped_clip, tmp_path):
    timeline = _otio_timeline(shipped_clip, start=0, rate=NTSC, gap=0, clip_start=0, clip_len=4,
                              url=shipped_clip.absolute().as_uri())
    assert bo.pick(timeline).media == shipped_clip.absolute()
    rel = _otio_timeline(shipped_clip, start=0, rate=NTSC, gap=0, clip_start=0, clip_len=4,
                         url="media/carphone_pristine.mp4")
    assert bo.pick(rel, base=shipped_clip.parents[1]).media == shipped_clip


def test_without_available_range_the_files_own_timecode_counts(tc_movie):
    rate = 24000 / 1001
    # 00:59:58:00 at 24 fps nominal = 86352 frames; the clip starts 5 frames later.
    ref = otio.schema.ExternalReference(target_url=str(tc_movie))
    clip = otio.schema.Clip(name="A001", media_reference=ref, source_range=TR(RT(86357, rate), RT(10, rate)))
    track = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    track.append(clip)
    timeline = otio.schema.Timeline()
    timeline.tracks.append(track)
    chosen = bo.pick(timeline)
    assert (chosen.first, chosen.last, chosen.frame_rate) == (5, 14, Fraction(24000, 1001))


def test_a_source_range_in_the_timelines_rate_is_converted_to_the_medias(shipped_clip):
    # 30000/1001 media in a 60000/1001 timeline: 24 timeline frames are 12 media frames.
    timeline = _otio_timeline(shipped_clip, start=0, rate=NTSC, gap=0, clip_start=0, clip_len=1)
    clip = bo.find_clip(timeline)[0]
    clip.source_range = TR(RT(20, 2 * NTSC), RT(24, 2 * NTSC))
    chosen = bo.pick(timeline)
    assert (chosen.first, chosen.last) == (10, 21)


def test_choosing_by_track_and_index_and_clear_errors(shipped_clip, tmp_path):
    timeline = _otio_timeline(shipped_clip, start=0, rate=NTSC, gap=5, clip_start=3, clip_len=4)
    v2 = timeline.video_tracks()[1]
    v2.append(otio.schema.Clip(name="carphone", media_reference=otio.schema.ExternalReference(
        target_url=str(shipped_clip), available_range=TR(RT(0, NTSC), RT(120, NTSC))),
        source_range=TR(RT(50, NTSC), RT(8, NTSC))))
    assert (bo.pick(timeline, track=2, index=1).first, bo.pick(timeline, track=1, index=1).first) == (50, 3)
    with pytest.raises(bo.OtioError, match="2 clips are named 'carphone'.*track 1, index 1.*track 2, index 1"):
        bo.pick(timeline, "carphone")
    with pytest.raises(bo.OtioError, match="no video clip named 'nope'.*'carphone' \\(track 1, index 1\\)"):
        bo.pick(timeline, "nope")
    with pytest.raises(bo.OtioError, match="no video track 3"):
        bo.pick(timeline, track=3, index=1)
    with pytest.raises(bo.OtioError, match="go together"):
        bo.pick(timeline, track=1)
    long = _otio_timeline(shipped_clip, start=0, rate=NTSC, gap=0, clip_start=110, clip_len=20)
    with pytest.raises(bo.OtioError, match="frames 110..129.*0..119.*relink"):
        bo.pick(long)
    missing = _otio_timeline(tmp_path / "gone.mov", start=0, rate=NTSC, gap=0, clip_start=0, clip_len=4)
    with pytest.raises(bo.OtioError, match="gone.mov does not exist"):
        bo.pick(missing)
    with pytest.raises(bo.OtioError, match="does not exist"):
        bo.read_timeline(tmp_path / "none.otio")


def _frames_on_disk(timeline: otio.schema.Timeline, track: int) -> list[str]:
    """Every frame the edited clip shows, as an OTIO reader resolves it."""
    clip = bo.find_clip(timeline, track=track, index=1)[0]
    ref = clip.media_reference
    rate = ref.available_range.start_time.rate
    offsets = [int(round(clip.source_range.start_time.value_rescaled_to(rate) - ref.available_range.start_time.value)) + i
               for i in range(int(round(clip.source_range.duration.value_rescaled_to(rate))))]
    return [ref.target_url_for_image_number(i) for i in offsets]


def test_the_edit_goes_on_a_new_track_above_with_the_same_timing(shipped_clip, tmp_path):
    timeline = bo.read_timeline(_resolve_file(tmp_path, shipped_clip))
    chosen = bo.pick(timeline, "carphone_pristine.mp4")
    frames = tmp_path / "edit"
    frames.mkdir()
    for n in range(37, 43):
        (frames / f"shot_{n:06d}.png").write_bytes(b"png")
    edited = bo.with_edit(chosen, frames / "shot_%06d.png", sequence=True, metadata={"prompt": "ink", "seed": 3})
    out = tmp_path / "edited.otio"
    bo.write_new(edited, out)
    back = bo.read_timeline(out)
    tracks = back.video_tracks()
    assert [t.name for t in tracks] == ["Video 1", "Video 1 TokenFlow"]
    source, new = bo.find_clip(back, track=1, index=1)[0], bo.find_clip(back, track=2, index=1)[0]
    assert new.range_in_parent() == source.range_in_parent()  # same record time, same length
    assert new.source_range == source.source_range
    assert isinstance(new.media_reference, otio.schema.ImageSequenceReference)
    assert _frames_on_disk(back, 2) == [str(frames / f"shot_{n:06d}.png") for n in range(37, 43)]
    assert all(Path(p).is_file() for p in _frames_on_disk(back, 2))
    assert new.metadata["tokenflow"]["prompt"] == "ink" and new.metadata["tokenflow"]["frames"] == "37:42"
    assert not new.media_reference.target_url_base.startswith("file:")  # bare paths, like the source
    with pytest.raises(bo.OtioError, match="exists"):
        bo.write_new(edited, out)
    assert timeline.video_tracks()[0].name == "Video 1" and len(timeline.video_tracks()) == 1  # source untouched


def test_a_movie_edit_is_an_external_reference_over_the_same_source_times(shipped_clip, tmp_path):
    timeline = _otio_timeline(shipped_clip, start=0, rate=NTSC, gap=10, clip_start=12, clip_len=20,
                              url=shipped_clip.absolute().as_uri())
    chosen = bo.pick(timeline, "carphone")
    edited = bo.with_edit(chosen, tmp_path / "x.mov", sequence=False)
    names = [t.name for t in edited.tracks]
    assert names == ["V1", "V1 TokenFlow", "V2", "A1"]  # directly above the source, nothing else moved
    new = bo.find_clip(edited, track=2, index=1)[0]
    assert new.media_reference.target_url == (tmp_path / "x.mov").as_uri()
    assert new.media_reference.available_range == TR(RT(12, NTSC), RT(20, NTSC))
    assert new.range_in_parent().start_time == RT(10, NTSC)


def test_tokenflow_edit_otio_round_trip(shipped_clip, tiny_model_dir, tmp_path, capsys):
    from cli.main import main

    source = tmp_path / "cut.otio"
    otio.adapters.write_to_file(_otio_timeline(shipped_clip, start=0, rate=NTSC, gap=10, clip_start=40, clip_len=4),
                                str(source))
    frames, out = tmp_path / "frames", tmp_path / "edited.otio"
    code = main(["edit", "--otio", str(source), "--clip", "carphone", "-p", "a watercolor painting",
                 "--model", str(tiny_model_dir), "--size", "64", "--steps", "2", "--kf-interval", "4",
                 "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "-o", str(frames) + "/",
                 "--otio-out", str(out)])
    assert code == 0, capsys.readouterr().err
    back = bo.read_timeline(out)
    paths = _frames_on_disk(back, 2)
    assert [Path(p).name[-10:] for p in paths] == [f"{n:06d}.png" for n in range(40, 44)]
    assert all(Path(p).is_file() for p in paths)
    assert sorted(frames.iterdir()) == sorted(Path(p) for p in paths)
    assert bo.find_clip(back, track=2, index=1)[0].range_in_parent().start_time == RT(10, NTSC)
    # The prompt as text (-p is repeatable, so args.prompt is a list: it was written as one).
    assert bo.find_clip(back, track=2, index=1)[0].metadata["tokenflow"]["prompt"] == "a watercolor painting"
    # A second run never replaces the timeline it wrote, and says so before any work.
    code = main(["edit", "--otio", str(source), "--clip", "carphone", "-p", "x", "--otio-out", str(out)])
    assert code == 2 and "exists" in capsys.readouterr().err
    code = main(["edit", str(shipped_clip), "--otio", str(source), "-p", "x"])
    assert code == 2 and "leave out INPUT" in capsys.readouterr().err
