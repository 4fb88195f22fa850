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
LAYOUT = os.environ.get("TF_LAYOUT", "trim")
if LAYOUT == "hold":  # movie at frame 1, Hold Split at 41 (hold offsets), the right part trimmed to 43..46
    head = strips.new_movie(name="carphone head", filepath=footage, channel=2, frame_start=1)
    source = head.split(frame=41, split_method="HARD")
    source.name = "carphone"
    source.frame_offset_start, source.frame_offset_end = 2, 74  # visible: movie frames 42..45
else:
    source = strips.new_movie(name="carphone", filepath=footage, channel=2, frame_start=10)
    trim_start, trim_end = (int(x) for x in os.environ.get("TF_TRIM", "20,96").split(","))
    source.frame_offset_start = trim_start  # trims: by default the visible part is movie frames 20..23
    source.frame_offset_end = trim_end
blocker = strips.new_effect(name="title card", type="COLOR", channel=3, frame_start=5,
                            **({"frame_end": 32} if bpy.app.version < (4, 5, 0) else {"length": 27}))
if LAYOUT == "meta":  # the movie inside a meta strip on channel 4, as Strip > Make Meta Strip leaves it
    for strip in strips:
        strip.select = strip == source
    if bpy.app.version < (4, 0, 0):
        bpy.ops.sequencer.meta_make()  # runs without a window in 3.x
        meta = editor.active_strip
    else:  # the operator needs a Sequencer area; the API calls give the same strip
        meta = strips.new_meta(name="MetaStrip", channel=4, frame_start=source.frame_final_start)
        source.move_to_meta(meta)
        meta.frame_final_end = source.frame_final_end
    meta.channel = 4
    meta_strips = meta.strips if hasattr(meta, "strips") else meta.sequences
    source = meta_strips["carphone"]
if LAYOUT == "color":  # a colour strip is active: the menu item is greyed out, with the reason
    source = blocker
if LAYOUT == "missing":  # the movie file is gone
    source.filepath = footage + ".moved-away.mp4"
editor.active_strip = source

ARGS = dict(prompt="a watercolor painting", seed=5, preset=os.environ.get("TF_PRESET", "png"),
            params_json=json.dumps({"steps": 2, "short_side": 64, "kf_interval": 4}))
if os.environ.get("TF_MORE"):  # more looks, as typed into the operator's "More looks" field
    ARGS["more_prompts"] = os.environ["TF_MORE"]
LOOKS = 1 + len([p for p in os.environ.get("TF_MORE", "").split("|") if p.strip()])


def describe(strip):
    meta = strip.parent_meta() if hasattr(strip, "parent_meta") else None
    out = {"name": strip.name, "type": strip.type, "channel": strip.channel, "start": strip.frame_final_start,
           "end": strip.frame_final_end, "meta": meta.name if meta is not None else None}
    if strip.type == "IMAGE":
        out["files"] = [bpy.path.abspath(os.path.join(strip.directory, e.filename)) for e in strip.elements]
    if strip.type == "MOVIE":
        out["filepath"] = strip.filepath
    for key in ("tokenflow_prompt", "tokenflow_seed", "tokenflow_job", "tokenflow_source", "tokenflow_variant"):
        if key in strip:
            out[key] = strip[key]
    return out


def render(frame, name, hide=()):
    """Render the scene at `frame` to NAME.png, with the strips named in `hide` muted; its path."""
    everything = editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all
    for strip in everything:
        strip.mute = strip.name in hide
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 176, 144, 100
    scene.view_settings.view_transform = "Standard"  # 3.x starts with Filmic, which changes the colours
    scene.render.image_settings.file_format = "PNG"
    scene.frame_current = frame
    scene.render.filepath = os.path.join(os.getcwd(), name + ".png")
    bpy.ops.render.render(write_still=True)
    for strip in everything:
        strip.mute = False
    return scene.render.filepath


def renders():
    """What the scene shows at the placed strip's first and last frame, with and without it (background only)."""
    everything = editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all
    placed = [s for s in everything if s.name.endswith("TokenFlow")]
    if not placed or not bpy.app.background or not os.environ.get("TF_RENDER"):
        return {}
    first, last = placed[0].frame_final_start, placed[0].frame_final_end - 1
    return {"source_first": render(first, "source_first", hide=(placed[0].name,)),
            "source_last": render(last, "source_last", hide=(placed[0].name,)),
            "scene_first": render(first, "scene_first")}


def menus():
    """The Strip > Inputs menu as this Blender draws it (the missing-file message names it)."""
    import inspect

    menu = getattr(bpy.types, "SEQUENCER_MT_strip_input", None)
    return {"inputs": menu.bl_label if menu else None,
            "change_path": bool(menu) and 'text="Change Path/Files"' in inspect.getsource(menu)}


def report(result, error=None):
    everything = editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all
    print("SCENARIO " + json.dumps({"operator": sorted(result), "version": list(bpy.app.version),
                                    "background": bpy.app.background, "addon_file": mod.__file__, "error": error, "menus": menus(),
                                    "strips": [describe(s) for s in everything], "renders": renders()}), flush=True)
    if os.environ.get("TF_SAVE"):
        scene.frame_current = 31
        bpy.ops.wm.save_as_mainfile(filepath=os.environ["TF_SAVE"])


if bpy.app.background:
    try:
        outcome = bpy.ops.sequencer.tokenflow_edit(**ARGS)
    except RuntimeError as exc:  # a poll that failed, or an ERROR the operator reported
        report(set(), error=str(exc))
    else:
        report(outcome)
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
        everything = editor.strips_all if hasattr(editor, "strips_all") else editor.sequences_all
        placed = sum(" TokenFlow" in s.name for s in everything) >= LOOKS
        if not placed and time.monotonic() < state["deadline"]:
            return 0.5
        report(state.get("result", set()))
        bpy.ops.wm.quit_blender()
        return None

    bpy.app.timers.register(start, first_interval=1.0)
    bpy.app.timers.register(finish, first_interval=2.0)
