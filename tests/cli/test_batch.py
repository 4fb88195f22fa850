"""Batch files for the render queue: JSON, CSV and OpenTimelineIO, and output-name templates."""

from __future__ import annotations

import json
from pathlib import Path

import opentimelineio as otio
import pytest

from bridge.wire import naming
from cli import batch


def test_json_with_defaults_and_relative_paths(tmp_path):
    f = tmp_path / "jobs.json"
    f.write_text(json.dumps({"defaults": {"prompt": "a watercolor painting", "steps": 20},
                             "jobs": [{"input": "clips/a.mov", "range": "100:219", "seed": "3"},
                                      {"input": "/abs/b.mp4", "first": 0, "last": 9, "prompt": "pencil",
                                       "negative": "blurry", "preset": "prores_422_hq", "clip": "B cam"}]}))
    a, b = batch.load(f, {"seed": 1, "destination": "/renders"})
    assert a.input == str(tmp_path / "clips" / "a.mov") and a.frames == "100:219"
    assert a.params == {"prompt": "a watercolor painting", "steps": 20, "seed": 3}
    assert a.destination == "/renders" and a.row == 1
    assert b.frames == "0:9" and b.params["negative_prompt"] == "blurry" and b.params["seed"] == 1
    assert (b.preset, b.name) == ("prores_422_hq", "B cam")


def test_every_problem_is_reported_with_its_row(tmp_path):
    f = tmp_path / "jobs.csv"
    f.write_text("input,range,prompt,seed,colour\n"
                 "a.mov,1:5,ok,1,\n"
                 "b.mov,9:2,bad range,2,\n"
                 "c.mov,1:5,,x,\n")
    with pytest.raises(batch.BatchError) as err:
        batch.load(f)
    text = str(err.value)
    assert "unknown key 'colour'" in text  # a typo in the header is caught, not silently ignored
    f.write_text("input,range,prompt,seed\n"
                 "a.mov,1:5,ok,1\n"
                 "b.mov,9:2,bad range,2\n"
                 "c.mov,1:5,,3\n"
                 "d.mov,1:5,fine,x\n")
    with pytest.raises(batch.BatchError) as err:
        batch.load(f)
    problems = dict(err.value.problems)
    assert list(problems) == ["row 2 (line 3)", "row 3 (line 4)", "row 4 (line 5)"]
    assert "9:2 is empty" in problems["row 2 (line 3)"]
    assert "no prompt" in problems["row 3 (line 4)"]
    assert "seed must be a whole number, not 'x'" in problems["row 4 (line 5)"]
    assert "nothing was queued" in text


def test_bad_template_is_caught_before_anything_runs(tmp_path):
    f = tmp_path / "jobs.json"
    f.write_text(json.dumps([{"input": "a.mov", "prompt": "x", "template": "{clip}/{seed}"}]))
    with pytest.raises(batch.BatchError, match="folder separator"):
        batch.load(f)


def test_template_rendering_and_unique_names(tmp_path):
    values = {"clip": "A cam/../take 1", "first": 100, "last": 219, "prompt": "A Watercolor painting, soft light!",
              "seed": 7, "job": "3f9c", "batch": "b", "row": 2}
    expected = "A_cam_.._take_1_100-219_a-watercolor-painting-soft-light_7_3f9c"
    assert naming.render(naming.DEFAULT_TEMPLATE, values) == expected
    assert "/" not in naming.render("{clip}", values)
    with pytest.raises(naming.TemplateError, match="{frame}"):
        naming.render("{clip}_{frame}", values)
    (tmp_path / "x.mov").write_bytes(b"")
    (tmp_path / "x_2.mov").write_bytes(b"")
    assert naming.unique_path(tmp_path / "x.mov") == tmp_path / "x_3.mov"
    assert naming.unique_path(tmp_path / "y.mov") == tmp_path / "y.mov"


def _timeline(media: Path, *, start_tc: int | None, rate: float = 30000 / 1001) -> otio.schema.Timeline:
    """Two clips on V2 (V1 is empty) of `media`, whose first frame sits at frame `start_tc` of its timecode."""
    tl = otio.schema.Timeline(name="edit")
    v1 = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    v2 = otio.schema.Track(name="V2", kind=otio.schema.TrackKind.Video)
    tl.tracks.append(v1)
    tl.tracks.append(v2)
    base = start_tc or 0
    available = None
    if start_tc is not None:
        available = otio.opentime.TimeRange(otio.opentime.RationalTime(base, rate),
                                            otio.opentime.RationalTime(120, rate))
    for name, first, count in (("shot_010", 10, 8), ("shot_020", 40, 6)):
        ref = otio.schema.ExternalReference(target_url=media.as_uri(), available_range=available)
        clip = otio.schema.Clip(name=name, media_reference=ref, source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(base + first, rate), otio.opentime.RationalTime(count, rate)))
        if name == "shot_020":
            clip.metadata["tokenflow"] = {"prompt": "pencil sketch", "seed": 5}
        v2.append(clip)
        v2.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(duration=otio.opentime.RationalTime(3, rate))))
    return tl


def test_otio_counts_source_frames_from_the_media_start(tmp_path, shipped_clip):
    # The media starts at 01:00:00;00 (frame 107892 at 29.97 drop-frame counting, any base works):
    # the clip's source range is on that timecode, and the job must get frames 10..17 of the file.
    path = tmp_path / "edit.otio"
    otio.adapters.write_to_file(_timeline(shipped_clip, start_tc=107892), str(path))
    a, b = batch.load(path, {"prompt": "watercolor"})  # V1 has no clips: the first track with clips is used
    assert (a.input, a.frames, a.name, a.params["prompt"]) == (str(shipped_clip), "10:17", "shot_010", "watercolor")
    assert (b.frames, b.params["prompt"], b.params["seed"]) == ("40:45", "pencil sketch", 5)
    assert a.where == "clip 1 'shot_010' on track 2 'V2'"
    assert [j.frames for j in batch.load(path, {"prompt": "w"}, track="V2")] == ["10:17", "40:45"]
    with pytest.raises(batch.BatchError, match="no video track named 'V9'"):
        batch.load(path, {"prompt": "w"}, track="V9")
    with pytest.raises(batch.BatchError, match="has no clips"):
        batch.load(path, {"prompt": "w"}, track="1")


def test_otio_without_available_range_and_missing_media(tmp_path, shipped_clip):
    path = tmp_path / "edit.otio"
    otio.adapters.write_to_file(_timeline(shipped_clip, start_tc=None), str(path))
    assert [j.frames for j in batch.load(path, {"prompt": "w"})] == ["10:17", "40:45"]
    tl = _timeline(shipped_clip, start_tc=None)
    tl.tracks[1][0].media_reference = otio.schema.MissingReference()
    otio.adapters.write_to_file(tl, str(path))
    with pytest.raises(batch.BatchError) as err:
        batch.load(path, {"prompt": "w"})
    assert err.value.problems == [("clip 1 'shot_010' on track 2 'V2'",
                                   "the clip has no media (a missing reference): relink it in the editor")]


def test_loras_in_a_batch_file_as_a_list_or_one_text(tmp_path):
    as_text = batch.job_from_mapping({"input": "a.mov", "prompt": "x", "lora": "ink.safetensors:0.5, grain"},
                                     "row 1", 1, tmp_path, {})
    as_list = batch.job_from_mapping({"input": "a.mov", "prompt": "x", "loras": ["ink.safetensors:0.5", "grain"]},
                                     "row 1", 1, tmp_path, {})
    assert as_text.params["loras"] == as_list.params["loras"] == ["ink.safetensors:0.5", "grain"]
    with pytest.raises(ValueError, match="lora must be a list of texts"):
        batch.job_from_mapping({"input": "a.mov", "prompt": "x", "lora": [3]}, "row 1", 1, tmp_path, {})
