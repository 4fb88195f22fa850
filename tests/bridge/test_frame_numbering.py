"""Frame N is the picture on screen at N / rate, on constant-rate, variable-rate and
gapped sources; `probe` says so; ranges past the end are refused with the real length."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from bridge.media import MediaError, parse_frame_range, probe, read_frames
from tests.bridge.clips import NTSC, make_clip, picture_number

REPO = Path(__file__).resolve().parents[2]
SLOTS = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 16]  # timestamp gaps after 3 and after 8
# What an editor conforming the clip to 30 fps shows at each frame: the gaps hold.
ON_SCREEN = [0, 1, 2, 3, 3, 3, 4, 5, 6, 6, 6, 6, 7, 8, 9, 10, 11]


@pytest.fixture(scope="module")
def gapped(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("vfr") / "gaps.mp4", rate=Fraction(30), slots=SLOTS)


@pytest.fixture(scope="module")
def jittery(tmp_path_factory) -> Path:
    """Phone-style: no gaps, but timestamps wander by a third of a frame."""
    folder = tmp_path_factory.mktemp("jitter")
    return make_clip(folder / "jitter.mov", rate=Fraction(30), slots=[0, 1.3, 2, 2.7, 4, 5.3, 6, 7, 8.3, 9])


def test_gapped_clip_holds_pictures_across_gaps(gapped):
    assert [picture_number(image) for image in read_frames(gapped, 0, 16)] == ON_SCREEN


@pytest.mark.parametrize("first", range(0, 17))
def test_every_range_of_a_gapped_clip_matches_the_whole(gapped, first):
    last = min(first + 3, 16)
    assert [picture_number(image) for image in read_frames(gapped, first, last)] == ON_SCREEN[first:last + 1]


def test_probe_reports_the_conformed_length_and_the_held_frames(gapped):
    info = probe(gapped)
    assert (info.frame_rate, info.frame_count, info.pictures) == (Fraction(30), 17, 12)
    assert info.variable_rate and info.held_frames == 5 and info.dropped_pictures == 0
    # The range an editor can mark is 0..16, not 0..11 (the picture count).
    assert parse_frame_range("12:16", info.frame_count) == (12, 16)
    with pytest.raises(MediaError, match=r"runs past the end of the clip, which has 17 frames: keep it within 0:16"):
        parse_frame_range("10:17", info.frame_count)
    with pytest.raises(MediaError, match="ended after 17 frames"):
        list(read_frames(gapped, 15, 18))


def test_jittery_clip_is_variable_rate_but_holds_nothing(jittery):
    info = probe(jittery, scan=True)
    assert info.variable_rate and info.held_frames == 0 and info.frame_count == 10
    assert [picture_number(image) for image in read_frames(jittery, 0, 9)] == list(range(10))


def test_constant_rate_clips_are_not_flagged(tmp_path, shipped_clip):
    ntsc = make_clip(tmp_path / "ntsc.mov", rate=NTSC, pictures=10, timecode="00:59:59;29")
    for clip, count, rate in ((ntsc, 10, NTSC), (shipped_clip, 120, NTSC)):
        info = probe(clip, scan=True)
        assert (info.frame_count, info.frame_rate, info.pictures) == (count, rate, count)
        assert not info.variable_rate and info.held_frames == 0 and info.timestamps_checked
    assert probe(ntsc).start_timecode == "00:59:59;29"
    assert [picture_number(image) for image in read_frames(ntsc, 4, 9)] == [4, 5, 6, 7, 8, 9]


def test_probe_command_prints_the_facts(gapped, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "cli", "probe", str(gapped), "--json"],
                         capture_output=True, text=True, cwd=REPO, env=env, check=True)
    facts = json.loads(run.stdout)
    assert facts["frame_count"] == 17 and facts["frame_rate"] == "30/1"
    assert facts["variable_rate"] is True and facts["held_frames"] == 5 and facts["pictures"] == 12
    assert (facts["width"], facts["height"]) == (64, 48) and facts["audio"] is None
    text = subprocess.run([sys.executable, "-m", "cli", "probe", str(gapped)],
                          capture_output=True, text=True, cwd=REPO, env=env, check=True).stdout
    assert "variable" in text and "5 frame(s) hold the previous picture" in text
    missing = subprocess.run([sys.executable, "-m", "cli", "probe", str(tmp_path / "nope.mp4")],
                             capture_output=True, text=True, cwd=REPO, env=env)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


@pytest.mark.parametrize(
    ("average", "guessed", "expected"),
    [
        (Fraction(2997003, 100000), NTSC, NTSC),  # an odd last frame: the cleaner rate
        (Fraction(360, 17), Fraction(30), Fraction(30)),  # gaps pull the average down: the base rate
        (Fraction(2983, 100), Fraction(30), Fraction(30)),  # phone jitter
        (NTSC, Fraction(60000, 1001), NTSC),  # interlaced: twice the average is the field rate
        (Fraction(59, 2), Fraction(90000), Fraction(59, 2)),  # a time base, not a rate
    ],
)
def test_which_rate_a_clip_is_conformed_to(average, guessed, expected):
    from types import SimpleNamespace

    from bridge.media.clip import stream_frame_rate

    assert stream_frame_rate(SimpleNamespace(average_rate=average, guessed_rate=guessed), "clip.mp4") == expected
