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

import pytest

from bridge.editors import blender as bb
from bridge.installers import OWNED_MARK, InstallContext, InstallError
from bridge.installers import blender as blender_target
from bridge.installers import tokenflow_command as installer_command
from cli.launch import tokenflow_command
from tests.e2e.conftest import ServeProcess

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _ctx(home: Path, system: str = "Linux", **kw) -> InstallContext:
    return InstallContext(launcher=tokenflow_command, python=Path(sys.executable), home=home, system=system, env=kw.pop("env", {}), **kw)


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
    with pytest.raises(InstallError, match="start Blender once"):
        blender_target.install(_ctx(tmp_path))
    mine = tmp_path / ".config/blender/4.2/scripts/addons/tokenflow_vse.py"
    mine.parent.mkdir(parents=True)
    mine.write_text("# my own\n")
    (tmp_path / ".config/blender/5.0").mkdir()
    with pytest.raises(InstallError, match="--force"):
        blender_target.install(_ctx(tmp_path))
    assert not (tmp_path / ".config/blender/5.0/scripts/addons/tokenflow_vse.py").exists()  # nothing half done
    assert blender_target.uninstall(_ctx(tmp_path)).removed == [] and mine.read_text() == "# my own\n"


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


@pytest.mark.skipif(not os.environ.get("TOKENFLOW_TEST_BLENDER"), reason="real Blender: set TOKENFLOW_TEST_BLENDER=1")
@pytest.mark.parametrize("preset", ["png", "mov"])
@pytest.mark.parametrize("name, command", _blenders() or [pytest.param("none", [], marks=pytest.mark.skip("no Blender"))])
def test_the_addon_places_the_edit_above_the_strip_in_real_blender(name, command, preset, serve, shipped_clip,
                                                                   tmp_path):
    home = tmp_path / "home"
    version = _version(command)
    (home / ".config/blender" / version).mkdir(parents=True)
    blender_target.install(_ctx(home))
    footage = serve.out / f"footage-{abs(hash(name))}-{preset}" / "carphone.mp4"
    footage.parent.mkdir()
    shutil.copy(shipped_clip, footage)
    env = {**os.environ, "HOME": str(home), "TF_FOOTAGE": str(footage), "TF_PRESET": preset,
           "TOKENFLOW_SERVER": serve.endpoint, "PYTHONPATH": "", "TF_SAVE": str(tmp_path / "placed.blend")}
    env.pop("XDG_CONFIG_HOME", None)
    done = subprocess.run([*command, str(HERE / "blender_scenario.py")], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    lines = [line for line in done.stdout.splitlines() if line.startswith("SCENARIO ")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(lines[0][len("SCENARIO "):])
    assert report["operator"] == (["FINISHED"] if report["background"] else ["RUNNING_MODAL"])
    assert report["background"] == (name != "blender window")
    assert report["addon_file"].startswith(str(home / ".config/blender" / version / "scripts/addons"))
    by_name = {s["name"]: s for s in report["strips"]}
    source, blocker = by_name["carphone"], by_name["title card"]
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
        assert Path(placed["filepath"]).parent == footage.parent  # beside the source, a new file
