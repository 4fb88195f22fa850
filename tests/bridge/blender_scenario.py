"""Runs inside a real Blender (the `blender` binary with --python, or a Python with the `bpy` module).

Driven by tests/bridge/test_blender.py through environment variables: enables the
installed TokenFlow add-on, puts a trimmed movie strip on channel 2 with a colour strip
in the way on channel 3, runs the add-on's operator, and prints one JSON line
describing every strip afterwards. In background mode the operator blocks; with
Blender's window (under Xvfb) it runs modal on a timer, as a user sees it, and this
script waits for the placed strip with a timer of its own, then quits Blender.
"""

import json
import os
import sys

# isort: off
import bpy  # first: the bpy module makes Blender's own modules importable

import addon_utils  # noqa: E402
# isort: on

footage = os.environ["TF_FOOTAGE"]
scene = bpy.context.scene
scene.render.fps, scene.render.fps_base = 24, 1.0  # not the movie's 29.97: frames still map one to one
editor = scene.sequence_editor_create()
strips = editor.strips if hasattr(editor, "strips") else editor.sequences

mod = addon_utils.enable("tokenflow_vse", default_set=True)
if mod is None:
    sys.exit("the TokenFlow add-on did not load")
source = strips.new_movie(name="carphone", filepath=footage, channel=2, frame_start=10)
trim_start, trim_end = (int(x) for x in os.environ.get("TF_TRIM", "20,96").split(","))
source.frame_offset_start = trim_start  # trims: by default the visible part is movie frames 20..23
source.frame_offset_end = trim_end
blocker = strips.new_effect(name="title card", type="COLOR", channel=3, frame_start=5,
                            **({"frame_end": 32} if bpy.app.version < (4, 5, 0) else {"length": 27}))
editor.active_strip = source

ARGS = dict(prompt="a watercolor painting", seed=5, preset=os.environ.get("TF_PRESET", "png"),
            params_json=json.dumps({"steps": 2, "short_side": 64, "kf_interval": 4}))


def describe(strip):
    out = {"name": strip.name, "type": strip.type, "channel": strip.channel, "start": strip.frame_final_start,
           "end": strip.frame_final_end}
    if strip.type == "IMAGE":
        out["files"] = [bpy.path.abspath(os.path.join(strip.directory, e.filename)) for e in strip.elements]
    if strip.type == "MOVIE":
        out["filepath"] = strip.filepath
    for key in ("tokenflow_prompt", "tokenflow_seed", "tokenflow_job"):
        if key in strip:
            out[key] = strip[key]
    return out


def report(result):
    print("SCENARIO " + json.dumps({"operator": sorted(result), "version": list(bpy.app.version),
                                    "background": bpy.app.background, "addon_file": mod.__file__,
                                    "strips": [describe(s) for s in strips]}), flush=True)
    if os.environ.get("TF_SAVE"):
        scene.frame_current = 31
        bpy.ops.wm.save_as_mainfile(filepath=os.environ["TF_SAVE"])


if bpy.app.background:
    report(bpy.ops.sequencer.tokenflow_edit(**ARGS))
else:
    import time

    state = {"deadline": time.monotonic() + 240}

    def start():
        window = bpy.context.window_manager.windows[0]
        area = max(window.screen.areas, key=lambda a: a.width * a.height)
        area.type = "SEQUENCE_EDITOR"
        with bpy.context.temp_override(window=window, area=area):
            state["result"] = bpy.ops.sequencer.tokenflow_edit("EXEC_DEFAULT", **ARGS)
        return None

    def finish():
        placed = any(s.name.endswith("TokenFlow") for s in strips)
        if not placed and time.monotonic() < state["deadline"]:
            return 0.5
        report(state.get("result", set()))
        bpy.ops.wm.quit_blender()
        return None

    bpy.app.timers.register(start, first_interval=1.0)
    bpy.app.timers.register(finish, first_interval=2.0)
