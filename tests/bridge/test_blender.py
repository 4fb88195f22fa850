"""Blender's VSE add-on: `tokenflow install blender`, and the add-on run in a real Blender.

The real-Blender test is opt-in (it starts Blender and a real server: about 15 s per
Blender). Run it with

    TOKENFLOW_TEST_BLENDER=1 python -m pytest tests/bridge/test_blender.py

It uses the `blender` binary on PATH (Debian: `apt-get install blender`, 3.4; with
`xvfb-run` also with its window), and the Pythons with the `bpy` module listed in
TOKENFLOW_BPY_PYTHON (separated by `:`; PyPI's `bpy` needs Python 3.11 and numpy<2 in
its own environment: `python3.11 -m venv bpyenv && bpyenv/bin/pip install bpy "numpy<2"`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from bridge.command import Command
from bridge.editors import blender as bb
from bridge.installers import OWNED_MARK, InstallContext, InstallError
from bridge.installers import blender as blender_target
from bridge.installers import tokenflow_command as installer_command
from cli.launch import tokenflow_command
from tests.e2e.conftest import ServeProcess

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _ctx(home: Path, system: str = "Linux", **kw) -> InstallContext:
    return InstallContext(launcher=kw.pop("launcher", tokenflow_command), python=Path(sys.executable), home=home,
                          system=system, env=kw.pop("env", {}), **kw)


# --- install ---


@pytest.mark.parametrize("system, root", [
    ("Linux", ".config/blender"), ("Darwin", "Library/Application Support/Blender"),
    ("Windows", "AppData/Roaming/Blender Foundation/Blender"),
])
def test_the_addon_goes_into_every_blender_versions_addons_folder(tmp_path, system, root):
    for version in ("3.6", "4.2", "5.0", "config-backup"):
        (tmp_path / root / version).mkdir(parents=True)
    result = blender_target.install(_ctx(tmp_path, system))
    assert result.written == [tmp_path / root / v / "scripts/addons/tokenflow_vse.py" for v in ("3.6", "4.2", "5.0")]
    text = result.written[0].read_text()
    ctx = _ctx(tmp_path, system)
    assert OWNED_MARK in text and repr(installer_command(ctx, "handoff").to_dict()) in text and "bl_info" in text
    compile(text, "tokenflow_vse.py", "exec")
    assert "3.6, 4.2, 5.0" in result.notes[0]
    assert blender_target.status(_ctx(tmp_path, system)).installed
    removed = blender_target.uninstall(_ctx(tmp_path, system)).removed
    assert removed == result.written and not any(p.exists() for p in removed)


def test_no_blender_folder_and_foreign_addons_say_what_to_do(tmp_path):
    nowhere = {"PATH": str(tmp_path / "no-bin")}  # no `blender` to ask either
    with pytest.raises(InstallError, match=r"when you save its preferences.*Save Preferences"):
        blender_target.install(_ctx(tmp_path, env=nowhere))
    mine = tmp_path / ".config/blender/4.2/scripts/addons/tokenflow_vse.py"
    mine.parent.mkdir(parents=True)
    mine.write_text("# my own\n")
    (tmp_path / ".config/blender/5.0").mkdir()
    with pytest.raises(InstallError, match="--force"):
        blender_target.install(_ctx(tmp_path))
    assert not (tmp_path / ".config/blender/5.0/scripts/addons/tokenflow_vse.py").exists()  # nothing half done
    assert blender_target.uninstall(_ctx(tmp_path)).removed == [] and mine.read_text() == "# my own\n"


def test_with_no_user_folder_the_folder_of_the_blender_on_path_is_made(tmp_path):
    """Issue 20 item 3: Blender 3.4.1 makes its user folder only when preferences are saved."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "blender"
    fake.write_text("#!/bin/sh\necho 'Blender 3.4.1'\necho '\tbuild date: 2023-01-01'\n")
    fake.chmod(0o755)
    result = blender_target.install(_ctx(tmp_path / "home", env={"PATH": str(bin_dir)}))
    assert result.written == [tmp_path / "home/.config/blender/3.4/scripts/addons/tokenflow_vse.py"]
    assert result.written[0].is_file() and "made" in result.notes[-1] and "3.4" in result.notes[-1]
    dry = blender_target.install(_ctx(tmp_path / "home2", env={"PATH": str(bin_dir)}, dry_run=True))
    assert dry.written and not (tmp_path / "home2").exists()  # a dry run makes no folder either


@pytest.mark.skipif(shutil.which("blender") is None, reason="no blender on PATH")
def test_the_version_of_a_real_blender_on_path_is_read():
    version = blender_target.blender_on_path(_ctx(Path("/nonexistent"), env=dict(os.environ)))
    assert version is not None and version.count(".") == 1 and all(p.isdigit() for p in version.split("."))


def test_the_handoffs_messages_reach_an_echo_as_they_come(tmp_path):
    """Issue 20 item 3: in background mode the child's lines (an auto-started server's pid and log) are printed."""
    from bridge.editors.handoff import ClipRef, HandoffRequest, HandoffResult

    child = ("import sys; sys.stdin.read(); "
             "print('Started a local TokenFlow server (pid 4242, log /tmp/x.log)', file=sys.stderr, flush=True); "
             f"print({HandoffResult(clip_index=0, state='failed', message='m').to_line()!r})")
    request = HandoffRequest(clips=[ClipRef(media="/m.mov", first=0, last=1, frame_rate="24")], mode="panel")
    seen: list[str] = []
    job = bb.HandoffJob([sys.executable, "-c", child], {}, request, echo=seen.append)
    assert [r.state for r in job.results()] == ["failed"]
    assert seen == ["Started a local TokenFlow server (pid 4242, log /tmp/x.log)"] == job.log
    addon = (REPO / "packaging/blender/tokenflow_vse.py.in").read_text()
    assert "echo=_echo if bpy.app.background else None" in addon  # and the add-on passes print in background


def _movie_strip(path: Path, **timing):
    """A movie strip's fields as real Blender 3.4.1 and 5.0.1 report them (measured; see the real tests below)."""
    return SimpleNamespace(type="MOVIE", name="carphone", filepath=str(path), fps=29.97, channel=2,
                           use_reverse_frames=False, retiming_keys=None, parent_meta=lambda: None, **timing)


def test_hold_offsets_are_part_of_the_source_range(shipped_clip):
    """Issue 20 item 1: movie at frame 1, Hold Split at 41: the right part shows movie frames 40-119."""
    scene = SimpleNamespace(name="Scene", render=SimpleNamespace(fps=24, fps_base=1.0))
    right = _movie_strip(shipped_clip, frame_start=41.0, frame_final_start=41, frame_final_end=121,
                         animation_offset_start=40, animation_offset_end=0, frame_duration=80)
    clip = bb.clip_of(right, scene).clip
    assert (clip.first, clip.last, clip.record_frame) == (40, 119, 41)
    held = _movie_strip(shipped_clip, frame_start=41.0, frame_final_start=39, frame_final_end=121,
                        animation_offset_start=40, animation_offset_end=0, frame_duration=80)  # first frame held
    with pytest.raises(bb.BlenderProblem, match="past the ends of its movie"):
        bb.clip_of(held, scene)


def test_free_channel_is_the_first_above_without_overlap():
    def strip(channel, start, end):
        return SimpleNamespace(channel=channel, frame_final_start=start, frame_final_end=end)

    others = [strip(2, 0, 30), strip(3, 29, 40), strip(4, 50, 60), strip(5, 0, 10)]
    assert bb.free_channel_above(others, 1, 30, 50) == 2  # ends exactly where the range starts
    assert bb.free_channel_above(others, 2, 30, 50) == 4  # 3 overlaps by a frame; 4 starts at 50
    assert bb.free_channel_above([strip(c, 0, 99) for c in range(2, 129)], 1, 0, 10) is None


# --- real Blender ---


def _blenders() -> list[tuple[str, list[str]]]:
    found = []
    blender = shutil.which("blender")
    if blender:
        found.append(("blender binary", [blender, "-b", "--factory-startup", "--python-exit-code", "1", "--python"]))
        if shutil.which("xvfb-run"):  # with its window: the operator runs modal, as a user sees it
            found.append(("blender window", ["xvfb-run", "-a", "-s", "-screen 0 1280x720x24", blender,
                                             "--factory-startup", "--python-exit-code", "1", "--python"]))
    for python in filter(None, os.environ.get("TOKENFLOW_BPY_PYTHON", "").split(os.pathsep)):
        found.append((f"bpy module {python}", [python]))
    return found


def _version(command: list[str]) -> str:
    """"3.4", "5.0": the name of this Blender's user folder."""
    code = "import bpy; print('VERSION', *bpy.app.version[:2])"
    if command[0] == "xvfb-run":
        command = [command[4], "-b", "--factory-startup", "--python"]
    argv = [*command[:-1], "--python-expr", code] if command[-1] == "--python" else [*command, "-c", code]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120).stdout
    return ".".join(next(line for line in out.splitlines() if line.startswith("VERSION")).split()[1:])


@pytest.fixture(scope="module")
def serve(tmp_path_factory, tiny_model_dir):
    server = ServeProcess(tmp_path_factory.mktemp("serve"), tiny_model_dir).start()
    yield server
    server.stop()


REAL = pytest.mark.skipif(not os.environ.get("TOKENFLOW_TEST_BLENDER"), reason="real Blender: set TOKENFLOW_TEST_BLENDER=1")
BLENDERS = _blenders() or [pytest.param("none", [], marks=pytest.mark.skip("no Blender"))]
BACKGROUND = [b for b in BLENDERS if b[0] != "blender window"]  # renders need background mode


def _this_checkout(*args: str, python: Path | None = None, windows: bool | None = None) -> Command:
    """`tokenflow ARGS` run from the checkout under test (as cli/launch.py records it without a console
    script): the venv's console script may belong to another checkout of the project (a git worktree)."""
    return Command([str(python or sys.executable), "-m", "cli", *args], {"PYTHONPATH": str(REPO)})


def _scenario(name: str, command: list[str], serve, clip: Path, tmp_path: Path, preset: str = "png",
              **extra: str) -> tuple[dict, str]:
    """Install the add-on into a fresh home for this Blender, run blender_scenario.py; its report and stdout."""
    tmp_path.mkdir(exist_ok=True)
    home = tmp_path / "home"
    version = _version(command)
    (home / ".config/blender" / version).mkdir(parents=True)
    blender_target.install(_ctx(home, launcher=_this_checkout))
    footage = serve.out / f"footage-{abs(hash(str(tmp_path)))}-{preset}" / "carphone.mp4"
    footage.parent.mkdir()
    shutil.copy(clip, footage)
    env = {**os.environ, "HOME": str(home), "TF_FOOTAGE": str(footage), "TF_PRESET": preset,
           "TOKENFLOW_SERVER": serve.endpoint, "PYTHONPATH": "", "TF_SAVE": str(tmp_path / "placed.blend"), **extra}
    env.pop("XDG_CONFIG_HOME", None)
    done = subprocess.run([*command, str(HERE / "blender_scenario.py")], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("SCENARIO ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(lines[0][len("SCENARIO "):])
    assert report["addon_file"].startswith(str(home / ".config/blender" / version / "scripts/addons")), report
    return report, done.stdout


@REAL
@pytest.mark.parametrize("preset", ["png", "mov"])
@pytest.mark.parametrize("name, command", BLENDERS)
def test_the_addon_places_the_edit_above_the_strip_in_real_blender(name, command, preset, serve, shipped_clip,
                                                                   tmp_path):
    report, _ = _scenario(name, command, serve, shipped_clip, tmp_path, preset)
    assert report["operator"] == (["FINISHED"] if report["background"] else ["RUNNING_MODAL"])
    assert report["background"] == (name != "blender window")
    by_name = {s["name"]: s for s in report["strips"]}
    source, blocker = by_name["carphone"], by_name["title card"]
    footage = Path(source["filepath"]).parent
    assert (source["channel"], source["start"], source["end"]) == (2, 30, 34)
    placed = by_name["carphone TokenFlow"]
    assert (placed["channel"], placed["start"], placed["end"]) == (4, 30, 34), report  # 3 is in the way
    assert (blocker["channel"], blocker["start"]) == (3, 5)  # untouched
    assert placed["tokenflow_prompt"] == "a watercolor painting" and placed["tokenflow_seed"] == 5
    if preset == "png":
        assert placed["type"] == "IMAGE"
        assert [Path(f).name[-10:] for f in placed["files"]] == [f"{n:06d}.png" for n in range(20, 24)]
        assert all(Path(f).is_file() for f in placed["files"])
    else:
        assert placed["type"] == "MOVIE" and Path(placed["filepath"]).is_file()
        assert Path(placed["filepath"]).parent == footage  # beside the source, a new file


def _movie_frame_shown(png: str, clip: Path) -> int:
    """Which frame of `clip` the rendered picture `png` is (the closest of them all)."""
    from bridge.media.decode import read_frames

    frames = np.stack(list(read_frames(clip, 0, 119))).astype(np.float32)
    picture = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32)
    return int(np.abs(frames - picture[None]).mean(axis=(1, 2, 3)).argmin())


@REAL
@pytest.mark.parametrize("name, command", BACKGROUND)
def test_a_hold_split_strip_sends_the_movie_frames_blender_shows(name, command, serve, shipped_clip, tmp_path):
    """Issue 20 item 1: the hold offsets (animation_offset_start/end) are part of the source range."""
    report, stdout = _scenario(name, command, serve, shipped_clip, tmp_path, TF_LAYOUT="hold", TF_RENDER="1")
    by_name = {s["name"]: s for s in report["strips"]}
    source, placed = by_name["carphone"], by_name["carphone TokenFlow"]
    assert (source["start"], source["end"]) == (43, 47) and (placed["start"], placed["end"]) == (43, 47)
    # what Blender itself shows on the placed strip's first and last frame, found among the movie's frames ...
    shown = [_movie_frame_shown(report["renders"][k], shipped_clip) for k in ("source_first", "source_last")]
    assert shown == [42, 45]
    # ... is what was edited: the sequence's images are numbered with the source frames they replace
    assert [Path(f).name[-10:] for f in placed["files"]] == [f"{n:06d}.png" for n in range(42, 46)]
    assert placed["tokenflow_source"].endswith("[42:45]")
    # background mode: the handoff's messages reach Blender's output (a started server's pid and log among them)
    assert "TokenFlow: carphone [42:45]: job " in stdout


@REAL
@pytest.mark.parametrize("name, command", BACKGROUND)
def test_a_movie_inside_a_meta_strip_gets_its_result_beside_it_and_shown(name, command, serve, shipped_clip,
                                                                         tmp_path):
    """Issue 20 item 2: the result goes into the meta strip, above the source, where the scene shows it."""
    report, _ = _scenario(name, command, serve, shipped_clip, tmp_path, TF_LAYOUT="meta", TF_RENDER="1")
    by_name = {s["name"]: s for s in report["strips"]}
    source, placed = by_name["carphone"], by_name["carphone TokenFlow"]
    meta = source["meta"]
    assert meta is not None and by_name[meta]["channel"] == 4
    assert placed["meta"] == meta and placed["channel"] > source["channel"]
    assert (placed["start"], placed["end"]) == (source["start"], source["end"]) == (30, 34)
    scene = np.asarray(Image.open(report["renders"]["scene_first"]).convert("RGB"), dtype=np.float32)
    result = np.asarray(Image.open(placed["files"][0]).convert("RGB").resize((176, 144)), dtype=np.float32)
    source_shown = np.asarray(Image.open(report["renders"]["source_first"]).convert("RGB"), dtype=np.float32)
    # the scene shows the edit, not the source it covers
    assert np.abs(scene - result).mean() < np.abs(scene - source_shown).mean() / 3


@REAL
@pytest.mark.parametrize("name, command", BACKGROUND)
def test_greyed_out_item_says_why_and_missing_movie_names_blenders_menu(name, command, serve, shipped_clip, tmp_path):
    """Issue 20 item 3: poll_message_set's reason, and the relink menu as this Blender names it."""
    report, _ = _scenario(name, command, serve, shipped_clip, tmp_path / "color", TF_LAYOUT="color")
    assert "'title card' is a color strip: TokenFlow edits movie strips" in report["error"]
    report, _ = _scenario(name, command, serve, shipped_clip, tmp_path / "missing", TF_LAYOUT="missing")
    assert report["menus"] == {"inputs": "Inputs", "change_path": True}
    assert "Relink it (Strip > Inputs > Change Path/Files)" in report["error"]


@REAL
@pytest.mark.parametrize("name, command", BLENDERS)
def test_several_looks_become_strips_stacked_above_the_source_each_named_after_its_prompt(name, command, serve,
                                                                                        shipped_clip, tmp_path):
    """Issue 18 item 2 in the editor: "More looks" edits every prompt in one job; one strip per prompt."""
    report, stdout = _scenario(name, command, serve, shipped_clip, tmp_path, TF_MORE="pencil sketch | ")
    by_name = {s["name"]: s for s in report["strips"]}
    looks = sorted((s for s in report["strips"] if " TokenFlow" in s["name"]), key=lambda s: s["channel"])
    assert [s["name"] for s in looks] == ["carphone TokenFlow 1: a watercolor painting",
                                          "carphone TokenFlow 2: pencil sketch"], (report["strips"], stdout[-3000:])
    assert [(s["channel"], s["start"], s["end"]) for s in looks] == [(4, 30, 34), (5, 30, 34)]  # 3 is in the way
    assert (by_name["title card"]["channel"], by_name["title card"]["start"]) == (3, 5)  # untouched
    assert [(s["tokenflow_prompt"], s["tokenflow_variant"], s["tokenflow_seed"]) for s in looks] == [
        ("a watercolor painting", 0, 5), ("pencil sketch", 1, 5)]
    assert looks[0]["tokenflow_job"] == looks[1]["tokenflow_job"]  # one job, not one per prompt
    for look in looks:
        assert [Path(f).name[-10:] for f in look["files"]] == [f"{n:06d}.png" for n in range(20, 24)]
        assert all(Path(f).is_file() for f in look["files"])
    assert Path(looks[0]["files"][0]).read_bytes() != Path(looks[1]["files"][0]).read_bytes()


@REAL
@pytest.mark.parametrize("layout", ["hold", "meta"])
@pytest.mark.parametrize("name, command", BACKGROUND)
def test_several_looks_of_a_hold_split_or_meta_strip_land_where_the_one_look_does(name, command, layout, serve,
                                                                                  shipped_clip, tmp_path):
    """The timeline's own features with several looks: every look of a hold-split strip covers the
    frames Blender shows, and every look of a strip inside a meta goes into that meta, above the source."""
    report, stdout = _scenario(name, command, serve, shipped_clip, tmp_path, TF_LAYOUT=layout,
                               TF_MORE="pencil sketch")
    by_name = {s["name"]: s for s in report["strips"]}
    source = by_name["carphone"]
    looks = sorted((s for s in report["strips"] if " TokenFlow" in s["name"]), key=lambda s: s["channel"])
    assert [s["tokenflow_variant"] for s in looks] == [0, 1], (report["strips"], stdout[-3000:])
    assert len({s["channel"] for s in looks}) == 2 and all(s["channel"] > source["channel"] for s in looks)
    for look in looks:
        assert (look["start"], look["end"]) == (source["start"], source["end"])
        assert look["meta"] == source["meta"]  # None outside a meta; the same meta inside one
        if layout == "hold":
            assert [Path(f).name[-10:] for f in look["files"]] == [f"{n:06d}.png" for n in range(42, 46)]
    if layout == "meta":
        assert source["meta"] is not None
