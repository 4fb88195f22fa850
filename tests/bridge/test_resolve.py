"""DaVinci Resolve: ranges picked from the timeline and results placed back, against a fake of Resolve's API."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import pytest

from bridge.editors import resolve as r
from bridge.editors.handoff import HandoffResult
from tests.bridge.fake_resolve import FakeResolve

START = 108000  # 01:00:00:00 at 30 fps, Resolve's usual timeline start


@pytest.fixture
def app(shipped_clip):
    app = FakeResolve()
    app.project.add_timeline(frame_rate="29.97", start_frame=START, tracks=2)
    return app


def _timeline(app):
    return app.project.current


def _sequence(folder: Path, first: int, last: int) -> str:
    """Files as the server writes an image sequence numbered from the source frames."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(first, last + 1):
        (folder / f"edit_{n:06d}.png").write_bytes(b"\x89PNG")
    return str(folder / "edit_%06d.png")


def _done(path: str, first: int, last: int, index: int = 0) -> HandoffResult:
    return HandoffResult(clip_index=index, state="done", job_id=f"job{index}", output=path, first_number=first,
                         last_number=last, prompt="a watercolor painting", seed=7)


# --- what to edit ---


def test_current_item_range_comes_from_left_offset_not_the_off_by_one_source_start(app, shipped_clip):
    tl = _timeline(app)
    media = app.media(shipped_clip, fps="29.97", start_tc="01:02:03:04")
    item = tl.add(1, "carphone", media, start=START + 100, duration=20, left_offset=10)
    tl.playhead = START + 105
    picked, problems = r.collect(app)
    assert problems == []
    clip = picked[0].clip
    assert (clip.media, clip.first, clip.last) == (str(shipped_clip), 10, 29)
    assert item.GetSourceStartFrame() != clip.first  # the quirk is there, and not trusted
    assert (clip.frame_rate, clip.start_timecode) == ("30000/1001", "01:02:03:04")
    assert (clip.record_frame, clip.track, clip.editor) == (START + 100, 1, "resolve")
    assert picked[0].timeline_frames == 20


def test_in_out_marks_clip_every_item_they_cover(app, shipped_clip):
    tl = _timeline(app)
    media = app.media(shipped_clip)
    tl.add(1, "a", media, start=START, duration=30, left_offset=5)
    tl.add(1, "b", media, start=START + 30, duration=30, left_offset=60)
    tl.add(2, "c", media, start=START + 40, duration=10, left_offset=0)
    tl.add(1, "outside", media, start=START + 200, duration=10, left_offset=0)
    tl.marks = {"video": {"in": 20, "out": 44}, "audio": {"in": 20, "out": 44}}  # offsets, inclusive
    picked, problems = r.collect(app)
    got = {p.clip.name: (p.clip.first, p.clip.last, p.clip.record_frame, p.timeline_frames) for p in picked}
    assert problems == []
    assert got == {"a": (25, 34, START + 20, 10), "b": (60, 74, START + 30, 15), "c": (0, 4, START + 40, 5)}


def test_marks_are_ignored_before_19_1_and_the_playhead_clip_is_used(shipped_clip):
    app = FakeResolve(version=(18, 6, 6))
    tl = app.project.add_timeline(start_frame=START)
    tl.add(1, "a", app.media(shipped_clip), start=START, duration=30, left_offset=5)
    tl.marks = {"video": {"in": 20, "out": 24}}
    picked, _ = r.collect(app)
    assert (picked[0].clip.first, picked[0].clip.last) == (5, 34)


@pytest.mark.parametrize("version, used", [((21, 0, 4), True), ((20, 2, 0), False), ((18, 5, 0), False)])
def test_the_selection_comes_from_get_selected_clips_where_resolve_has_it(shipped_clip, version, used):
    """Issue 20 item 21: Timeline.GetSelectedClips() (21.0 README), not the undocumented GetSelectedItems."""
    app = FakeResolve(version=version)
    tl = app.project.add_timeline(start_frame=START, tracks=2)
    media = app.media(shipped_clip)
    a = tl.add(1, "a", media, start=START, duration=10, left_offset=0)
    tl.add(1, "b", media, start=START + 10, duration=10, left_offset=50)
    c = tl.add(2, "c", media, start=START + 30, duration=8, left_offset=90)
    tl.selection = [a, c]
    tl.playhead = START + 12
    picked, _ = r.collect(app)
    got = [(p.clip.name, p.clip.first, p.clip.last, p.clip.track) for p in picked]
    assert got == ([("a", 0, 9, 1), ("c", 90, 97, 2)] if used else [("b", 50, 59, 1)])  # else: the clip under the playhead


def test_a_clip_at_another_rate_is_counted_in_its_own_frames(app, shipped_clip):
    tl = _timeline(app)
    tl.frame_rate = "25"
    tl.add(1, "fifty", app.media(shipped_clip, fps="50"), start=START, duration=12, left_offset=4)
    clip = r.collect(app)[0][0].clip
    assert (clip.first, clip.last, clip.frame_rate) == (8, 31, "50")


def test_clips_without_a_media_file_are_skipped_with_a_reason(app, shipped_clip, tmp_path):
    tl = _timeline(app)
    tl.add(1, "good", app.media(shipped_clip), start=START, duration=10)
    tl.add(1, "Solid Color", None, start=START + 10, duration=10)
    tl.add(1, "Compound Clip 1", app.media("", kind="Compound"), start=START + 20, duration=10)
    tl.add(1, "offline", app.media(tmp_path / "gone.mov"), start=START + 30, duration=10)
    tl.add(1, "nofile", app.media(""), start=START + 40, duration=10)
    tl.marks = {"video": {"in": 0, "out": 49}}
    picked, problems = r.collect(app)
    assert [p.clip.name for p in picked] == ["good"]
    assert len(problems) == 4
    assert "generator" in problems[0] and "Render in Place" in problems[0]
    assert "compound clip" in problems[1]
    assert "not on this machine" in problems[2] and "gone.mov" in problems[2]
    assert "no media file" in problems[3]


def test_nothing_to_edit_says_what_to_do(app):
    with pytest.raises(r.ResolveProblem, match="playhead"):
        r.collect(app)
    app.page = "color"
    with pytest.raises(r.ResolveProblem, match="Edit page"):
        r.collect(app)


def test_rates_are_exact():
    assert r.exact_rate("23.976") == Fraction(24000, 1001)
    assert r.exact_rate("29.97 DF") == Fraction(30000, 1001)
    assert r.exact_rate("29.97002997") == Fraction(30000, 1001)
    assert r.exact_rate(25) == 25
    with pytest.raises(r.ResolveProblem):
        r.exact_rate("fast")


# --- placing the result ---


def _picked_one(app, shipped_clip, start=START + 100, duration=20, left=10, track=1):
    tl = _timeline(app)
    tl.add(track, "carphone", app.media(shipped_clip), start=start, duration=duration, left_offset=left)
    tl.playhead = start
    return r.collect(app)[0][0]


def test_result_goes_to_the_first_track_free_over_the_whole_range(app, shipped_clip, tmp_path):
    picked = _picked_one(app, shipped_clip)
    tl = _timeline(app)
    blocker = tl.add(2, "title", None, start=START + 115, duration=30)  # overlaps the range's end on V2
    tl.add(3, "early", None, start=START, duration=100)  # V3 ends exactly where the range begins: free
    tl.marks = {"video": {"in": 3, "out": 9}}
    app.project.media_pool.current = folder = app.project.media_pool.root
    pattern = _sequence(tmp_path / "out", 10, 29)

    message = r.place(app, picked, _done(pattern, 10, 29))

    placed = [i for i in tl.tracks[2] if i.name != "early"]
    assert len(placed) == 1 and (placed[0].start, placed[0].duration) == (START + 100, 20)
    assert "V3" in message
    assert tl.tracks[1] == [blocker] and (blocker.start, blocker.duration) == (START + 115, 30)  # nothing overwritten
    append = [args for kind, m, args in app.calls if m == "AppendToTimeline"][0][0][0]
    # the fake is 19.1.4, whose endFrame is inclusive
    assert (append["startFrame"], append["endFrame"], append["recordFrame"], append["trackIndex"]) == (0, 19, START + 100, 3)
    imports = [args for kind, m, args in app.calls if m == "ImportMedia"]
    assert imports == [([{"FilePath": pattern, "StartIndex": 10, "EndIndex": 29}],)]
    bins = app.project.media_pool.root.subfolders
    assert [b.name for b in bins] == ["AI Edits"] and len(bins[0].clips) == 1
    item = bins[0].clips[0]
    assert "a watercolor painting" in item.metadata["Comments"] and "seed 7" in item.metadata["Comments"]
    assert "job0" in item.metadata["Comments"]
    assert item.third_party == {"TokenFlow Prompt": "a watercolor painting", "TokenFlow Seed": "7",
                                "TokenFlow Job": "job0"}
    assert app.project.media_pool.current is folder  # current folder restored
    assert tl.marks == {"video": {"in": 3, "out": 9}}
    assert "AddTrack" not in app.names()
    # The import happened inside the bin, then the folder was put back.
    folders = [args[0] for kind, m, args in app.calls if m == "SetCurrentFolder"]
    assert folders == ["AI Edits", "Master"]


def test_a_track_is_added_when_none_above_is_free(app, shipped_clip, tmp_path):
    picked = _picked_one(app, shipped_clip)
    tl = _timeline(app)
    tl.add(2, "busy", None, start=START + 90, duration=11)  # overlaps by one frame
    before = [list(t) for t in tl.tracks]
    r.place(app, picked, _done(_sequence(tmp_path / "o", 10, 29), 10, 29))
    assert len(tl.tracks) == 3 and [(i.start, i.duration) for i in tl.tracks[2]] == [(START + 100, 20)]
    assert [list(t) for t in tl.tracks[:2]] == before


def test_locked_tracks_are_skipped(app, shipped_clip, tmp_path):
    picked = _picked_one(app, shipped_clip)
    tl = _timeline(app)
    tl.locked.add(2)
    r.place(app, picked, _done(_sequence(tmp_path / "o", 10, 29), 10, 29))
    assert tl.tracks[1] == [] and len(tl.tracks[2]) == 1


def test_a_movie_result_is_imported_as_the_file(app, shipped_clip, tmp_path):
    picked = _picked_one(app, shipped_clip, duration=120, left=0)
    result = HandoffResult(clip_index=0, state="done", job_id="j", output=str(shipped_clip), prompt="p")
    r.place(app, picked, result)
    assert [args for _, m, args in app.calls if m == "ImportMedia"] == [([{"FilePath": str(shipped_clip)}],)]
    assert [(i.start, i.duration) for i in _timeline(app).tracks[1]] == [(START + 100, 120)]


def test_a_dropped_append_is_reported_not_hidden(app, shipped_clip, tmp_path):
    picked = _picked_one(app, shipped_clip)
    # The sequence on disk is shorter than the range: Resolve appends nothing.
    with pytest.raises(r.ResolveProblem, match="did not place"):
        r.place(app, picked, _done(_sequence(tmp_path / "o", 10, 19), 10, 19))


def test_the_source_timeline_is_used_and_the_current_one_restored(app, shipped_clip, tmp_path):
    picked = _picked_one(app, shipped_clip)
    source = _timeline(app)
    other = app.project.add_timeline(start_frame=0)
    app.project.current = other
    r.place(app, picked, _done(_sequence(tmp_path / "o", 10, 29), 10, 29))
    assert len(source.tracks[1]) == 1 and all(t == [] for t in other.tracks)
    assert app.project.current is other


def test_a_failed_result_is_a_sentence(app, shipped_clip):
    picked = _picked_one(app, shipped_clip)
    failed = HandoffResult(clip_index=0, state="failed", message="The GPU ran out of memory. Lower --size.")
    with pytest.raises(r.ResolveProblem, match="ran out of memory"):
        r.place(app, picked, failed)
    assert "ImportMedia" not in app.names()


def test_no_studio_only_call_and_no_uimanager_on_the_free_edition(app, shipped_clip, tmp_path, monkeypatch):
    assert not r.is_studio(app) and r.is_studio(FakeResolve(product="DaVinci Resolve Studio"))
    picked = _picked_one(app, shipped_clip)
    r.place(app, picked, _done(_sequence(tmp_path / "o", 10, 29), 10, 29))
    from tests.bridge.fake_resolve import STUDIO_ONLY

    assert not set(app.names()) & STUDIO_ONLY
    source = Path(r.__file__).read_text()
    assert "UIManager" not in source.replace("no UIManager", "").replace("UIManager windows", "")


def test_launch_reports_problems_and_stops_when_cancelled(app, shipped_clip):
    said: list[str] = []
    assert r.launch(app, ["/nonexistent/python", "handoff"], {}, ask=lambda n: None, say=said.append) == 0
    assert said[0] == "TokenFlow: DaVinci Resolve 19.1.4 (free edition: only functions of every edition are used)."
    assert "playhead" in said[1]
    _picked_one(app, shipped_clip)
    said.clear()
    assert r.launch(app, ["/nonexistent/python", "handoff"], {}, ask=lambda n: None, say=said.append) == 0
    assert len(said) == 1  # cancelled in the dialog: nothing started


def test_marks_changed_during_placement_are_put_back(app, shipped_clip, tmp_path):
    picked = _picked_one(app, shipped_clip)
    tl = _timeline(app)
    tl.marks = {"video": {"in": 3, "out": 9}}
    pool = app.project.media_pool
    append = pool.AppendToTimeline

    def append_and_move_marks(infos):  # whatever Resolve does to the marks while editing, they come back
        tl.marks = {"video": {"in": 100, "out": 119}}
        return append(infos)

    pool.AppendToTimeline = append_and_move_marks
    r.place(app, picked, _done(_sequence(tmp_path / "o", 10, 29), 10, 29))
    assert tl.marks == {"video": {"in": 3, "out": 9}}
    tl.marks = {}
    pool.AppendToTimeline = lambda infos: (tl.marks.update({"video": {"in": 1, "out": 2}}), append(infos))[1]
    picked2 = _picked_one(app, shipped_clip, start=START + 300)
    r.place(app, picked2, _done(_sequence(tmp_path / "o2", 10, 29), 10, 29))
    assert "video" not in tl.marks


def test_a_sequence_named_by_its_first_file_is_imported_as_the_whole_run(app, shipped_clip, tmp_path):
    picked = _picked_one(app, shipped_clip)
    pattern = _sequence(tmp_path / "o", 10, 29)
    (tmp_path / "o" / "edit_000031.png").write_bytes(b"x")  # not part of the unbroken run
    first_file = HandoffResult(clip_index=0, state="done", job_id="j", output=pattern % 10, prompt="p")
    assert r.import_description(first_file) == {"FilePath": pattern, "StartIndex": 10, "EndIndex": 29}
    r.place(app, picked, first_file)
    assert [(i.start, i.duration) for i in _timeline(app).tracks[1]] == [(START + 100, 20)]
    movie = HandoffResult(clip_index=0, state="done", job_id="j", output=str(shipped_clip))
    assert r.import_description(movie) == {"FilePath": str(shipped_clip)}


def test_a_result_resolve_stretches_is_reported_with_what_to_do(app, shipped_clip, tmp_path):
    tl = _timeline(app)
    tl.frame_rate = "25"
    tl.add(1, "fifty", app.media(shipped_clip, fps="50"), start=START, duration=10, left_offset=0)
    tl.playhead = START
    picked = r.collect(app)[0][0]
    assert (picked.clip.first, picked.clip.last, picked.timeline_frames) == (0, 19, 10)
    # The fake imports the sequence at the timeline's rate, one image per frame: 20 frames long.
    with pytest.raises(r.ResolveProblem, match="20 frames long instead of 10.*Clip Attributes to 50"):
        r.place(app, picked, _done(_sequence(tmp_path / "o", 0, 19), 0, 19))
    assert len(tl.tracks[1]) == 1  # placed, and said so


def test_marks_given_in_timeline_frames_are_recognised(app, shipped_clip):
    tl = _timeline(app)
    tl.add(1, "a", app.media(shipped_clip), start=START, duration=60, left_offset=5)
    tl.marks = {"video": {"in": START + 20, "out": START + 29}}  # absolute: as offsets they would lie past the end
    clip = r.collect(app)[0][0].clip
    assert (clip.first, clip.last, clip.record_frame) == (25, 34, START + 20)


# --- versions and editions (issue 20 items 19-21) ---

VERSIONS = [(18, 5, 0), (18, 6, 6), (19, 0, 0), (19, 0, 2), (19, 1, 3), (19, 1, 4), (20, 2, 0), (21, 0, 4)]


def _one_clip(version, shipped_clip, product="DaVinci Resolve", **fake):
    app = FakeResolve(product=product, version=version, **fake)
    tl = app.project.add_timeline(start_frame=START, tracks=2)
    tl.add(1, "carphone", app.media(shipped_clip), start=START + 100, duration=20, left_offset=10)
    tl.playhead = START + 100
    return app, tl


@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_places_the_whole_result_though_end_frame_differs(version, shipped_clip, tmp_path):
    """Item 19: endFrame is inclusive on 19.1.x, exclusive on 18.x and 20+: the result lands whole on each."""
    app, tl = _one_clip(version, shipped_clip)
    picked = r.collect(app)[0][0]
    r.place(app, picked, _done(_sequence(tmp_path / "o", 10, 29), 10, 29))
    assert [(i.start, i.duration, i.left_offset) for i in tl.tracks[1]] == [(START + 100, 20, 0)]
    appends = [args[0][0] for _, m, args in app.calls if m == "AppendToTimeline"]
    assert [a["endFrame"] for a in appends] == [19 if (19, 1) <= version[:2] < (19, 2) else 20]  # right first time


@pytest.mark.parametrize("version, inclusive", [((20, 2, 0), True), ((19, 1, 4), False), ((22, 0, 0), True)])
def test_a_resolve_that_reads_end_frame_the_other_way_is_corrected_once(version, inclusive, shipped_clip, tmp_path):
    """Item 19: a version that does not behave as its number says is caught by what was placed."""
    app, tl = _one_clip(version, shipped_clip, inclusive_end=inclusive)
    picked = r.collect(app)[0][0]
    r.place(app, picked, _done(_sequence(tmp_path / "o", 10, 29), 10, 29))
    assert [(i.start, i.duration) for i in tl.tracks[1]] == [(START + 100, 20)]
    assert len([m for _, m, _ in app.calls if m == "AppendToTimeline"]) == 2
    # exclusive read as inclusive: one frame short, deleted and put again
    assert app.names().count("DeleteClips") == (0 if inclusive else 1)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("product", ["DaVinci Resolve", "DaVinci Resolve Studio"])
def test_the_launcher_runs_on_every_claimed_version_and_edition(version, product, shipped_clip, tmp_path):
    """Item 20: methods newer than 18.5 are None there (calling them raises TypeError); every call is guarded."""
    app, tl = _one_clip(version, shipped_clip, product=product)
    tl.add(2, "busy", None, start=START + 110, duration=5)  # V2 taken over the range: V3 is added
    picked, problems = r.collect(app)
    assert problems == [] and (picked[0].clip.first, picked[0].clip.last, picked[0].clip.track) == (10, 29, 1)
    r.place(app, picked[0], _done(_sequence(tmp_path / "o", 10, 29), 10, 29))
    assert [(i.start, i.duration) for i in tl.tracks[2]] == [(START + 100, 20)]
    item = app.project.media_pool.root.subfolders[0].clips[0]
    assert "a watercolor painting" in item.metadata["Comments"]
    # item 21: third-party metadata only where the README has it (19.0.2)
    assert bool(item.third_party) == (version >= (19, 0, 2))
    said: list[str] = []
    assert r.launch(app, ["/nonexistent/python"], {}, ask=lambda n: None, say=said.append) == 0
    assert said[0].startswith(f"TokenFlow: {product} {'.'.join(map(str, version))}")


def test_the_fake_answers_like_resolve_for_missing_and_studio_only_methods(shipped_clip):
    """Item 20: the fake's model of Resolve: a missing method is None, a Studio-only call is False on free."""
    old, _ = _one_clip((18, 5, 0), shipped_clip)
    item = old.project.current.tracks[0][0]
    assert hasattr(item, "GetTrackTypeAndIndex") and item.GetTrackTypeAndIndex is None
    with pytest.raises(TypeError):
        item.GetTrackTypeAndIndex()
    assert hasattr(item, "NoSuchMethod") and item.NoSuchMethod is None
    assert old.project.current.DetectSceneCuts() is False
    studio, _ = _one_clip((18, 5, 0), shipped_clip, product="DaVinci Resolve Studio")
    assert studio.project.current.DetectSceneCuts() is True
    assert _one_clip((19, 0, 0), shipped_clip)[0].project.current.tracks[0][0].GetTrackTypeAndIndex() == ["video", 1]


def test_an_image_sequence_shown_as_individual_frames_is_undone_and_explained(app, shipped_clip, tmp_path):
    """Item 21: "Show Individual Frames" makes a sequence come back as stills: detected, removed, said."""
    picked = _picked_one(app, shipped_clip)
    app.project.media_pool.show_individual_frames = True
    with pytest.raises(r.ResolveProblem, match="20 single images.*Show Individual Frames.*movie format"):
        r.place(app, picked, _done(_sequence(tmp_path / "o", 10, 29), 10, 29))
    assert app.project.media_pool.root.subfolders[0].clips == []  # the stills it imported are gone again
    assert "AppendToTimeline" not in app.names() and _timeline(app).tracks[1] == []
    # a movie result is unaffected by the setting
    movie = HandoffResult(clip_index=0, state="done", job_id="j", output=str(shipped_clip), prompt="p")
    r.place(app, _picked_one(app, shipped_clip, start=START + 300, duration=120, left=0), movie)
    assert [(i.start, i.duration) for i in _timeline(app).tracks[1]] == [(START + 300, 120)]


def test_the_docs_say_which_versions_and_editions_each_route_works_on():
    """Item 22: docs/editors.md's route table matches the versions the fake (and the launcher) go by."""
    from tests.bridge.fake_resolve import SINCE

    text = (Path(__file__).resolve().parents[2] / "docs" / "editors.md").read_text()
    section = text[text.index("## DaVinci Resolve"):]
    section = section[:section.index("\n## ", 5)]
    assert "free and Studio, 18.5 and later" not in text
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]]
            for line in section.splitlines() if line.startswith("| ") and not line.startswith("| ---")}

    def since(name):
        return ".".join(str(n) for n in SINCE[name][:2 if SINCE[name][2] == 0 else 3]) + " and later"

    assert rows["Workspace > Scripts > TokenFlow (the script below)"] == ["18.5 to 21.0", "18.5 and later"]
    assert rows["... clips picked by in/out marks"] == [since("GetMarkInOut")] * 2
    assert rows["... clips picked by selection (`Timeline.GetSelectedClips`)"] == [since("GetSelectedClips")] * 2
    assert rows["... third-party metadata on the result (`SetThirdPartyMetadata`)"] == \
        [since("SetThirdPartyMetadata")] * 2
    # free 21.1+: a sentence pointing to the OpenFX effect
    assert "From 21.1 the free edition no longer lists Python scripts" in section and "OpenFX effect" in section


# --- several looks of a clip (several prompts in one job) ---


def _child(lines: list[str]) -> list[str]:
    """argv of a stand-in for `tokenflow handoff`: reads the request, prints these result lines."""
    script = "import sys; sys.stdin.read(); print(" + repr("\n".join(lines)) + ")"
    return [sys.executable, "-c", script]


def test_several_looks_stack_above_the_source_in_prompt_order_each_named_after_its_prompt(app, shipped_clip,
                                                                                           tmp_path):
    _picked_one(app, shipped_clip)
    tl = _timeline(app)
    blocker = tl.add(3, "title", None, start=START + 110, duration=5)  # V3 is taken over the range: V4 is next
    prompts = ["a watercolor painting", "pencil sketch"]
    outputs = [_sequence(tmp_path / slug, 10, 29) for slug in ("a-watercolor-painting", "pencil-sketch")]
    lines = [HandoffResult(clip_index=0, state="queued", job_id="job0", output=o, prompt=p, seed=7, variant=v).to_line()
             for v, (p, o) in enumerate(zip(prompts, outputs))]
    lines += [HandoffResult(clip_index=0, state="done", job_id="job0", output=o, first_number=10, last_number=29,
                            prompt=p, seed=7, variant=v).to_line() for v, (p, o) in enumerate(zip(prompts, outputs))]
    said: list[str] = []
    # mode "ask": the launcher does not know how many prompts the dialog gets; the queued lines tell it
    assert r.launch(app, _child(lines), {}, say=said.append) == 2, said
    looks = [(track, i.name, i.start, i.duration) for track in (2, 3, 4) for i in tl.tracks[track - 1]
             if i is not blocker]
    assert [(t, s, d) for t, _, s, d in looks] == [(2, START + 100, 20), (4, START + 100, 20)], said
    pool = app.project.media_pool.root.subfolders[0]
    assert [c.GetName() for c in pool.clips] == ["carphone 1: a watercolor painting", "carphone 2: pencil sketch"]
    assert [c.third_party["TokenFlow Prompt"] for c in pool.clips] == prompts
    assert [c.GetClipProperty("File Path") for c in pool.clips] == outputs
    assert [line for line in said if "queued" in line] == ["TokenFlow: 'carphone' queued as job job0."]


def test_one_look_keeps_its_file_name_in_the_bin(app, shipped_clip, tmp_path):
    _picked_one(app, shipped_clip)
    lines = [_done(_sequence(tmp_path / "o", 10, 29), 10, 29).to_line()]
    assert r.launch(app, _child(lines), {}, say=print) == 1
    assert "SetClipProperty" not in app.names()
