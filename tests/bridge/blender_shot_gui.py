"""Runs inside Blender with its window (under Xvfb): lays out a Preview over a Sequencer and takes a screenshot."""

import os

import bpy

OUT = os.environ["TF_SHOT"]


def arrange():
    win = bpy.context.window_manager.windows[0]
    screen = win.screen
    big = max(screen.areas, key=lambda a: a.width * a.height)
    with bpy.context.temp_override(window=win, area=big):
        bpy.ops.screen.area_split(direction="HORIZONTAL", factor=0.45)
    halves = sorted([a for a in screen.areas if a.type == "VIEW_3D"], key=lambda a: a.y)
    bottom, top = halves[0], halves[-1]
    top.type = "SEQUENCE_EDITOR"
    top.spaces.active.view_type = "PREVIEW"
    bottom.type = "SEQUENCE_EDITOR"
    bottom.spaces.active.view_type = "SEQUENCER"
    bottom.spaces.active.show_region_ui = True
    scene = bpy.context.scene
    editor = scene.sequence_editor
    for s in editor.sequences:
        s.select = s.name == "carphone TokenFlow"
    editor.active_strip = editor.sequences["carphone TokenFlow"]
    scene.frame_current = 40
    scene.render.resolution_x, scene.render.resolution_y = 176, 144
    scene.frame_start, scene.frame_end = 0, 80
    for area in (top, bottom):
        region = next(r for r in area.regions if r.type == "WINDOW")
        with bpy.context.temp_override(window=win, area=area, region=region):
            if area is bottom:
                bpy.ops.sequencer.view_all()
            else:
                bpy.ops.sequencer.view_all_preview()
    return None


def shoot():
    win = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=win):
        bpy.ops.wm.redraw_timer(type="DRAW_WIN_SWAP", iterations=1)  # the preview's zoom shows only after a redraw
        bpy.ops.screen.screenshot(filepath=OUT)
    if not os.environ.get("TF_SHOT_DIALOG"):
        bpy.ops.wm.quit_blender()
        return None
    # The operator's dialog, over the source strip, as it looks before the edit.
    import addon_utils

    addon_utils.enable("tokenflow_vse", default_set=True)
    editor = bpy.context.scene.sequence_editor
    editor.sequences.remove(editor.sequences["carphone TokenFlow"])  # as before the edit
    for s in editor.sequences:
        s.select = s.name == "carphone"
    editor.active_strip = editor.sequences["carphone"]
    area = next(a for a in win.screen.areas if a.type == "SEQUENCE_EDITOR" and a.spaces.active.view_type == "SEQUENCER")
    region = next(r for r in area.regions if r.type == "WINDOW")
    with bpy.context.temp_override(window=win, area=area, region=region):
        bpy.ops.sequencer.tokenflow_edit("INVOKE_DEFAULT", prompt="a watercolor painting", seed=5)
    bpy.app.timers.register(shoot_dialog, first_interval=2.0)
    return None


def shoot_dialog():
    win = bpy.context.window_manager.windows[0]
    with bpy.context.temp_override(window=win):
        bpy.ops.screen.screenshot(filepath=os.environ["TF_SHOT_DIALOG"])
    bpy.ops.wm.quit_blender()
    return None


bpy.app.timers.register(arrange, first_interval=1.0)
def zoom():
    win = bpy.context.window_manager.windows[0]
    for area in win.screen.areas:
        if area.type == "SEQUENCE_EDITOR" and area.spaces.active.view_type == "PREVIEW":
            region = next(r for r in area.regions if r.type == "WINDOW")
            with bpy.context.temp_override(window=win, area=area, region=region):
                bpy.ops.sequencer.view_zoom_ratio(ratio=2.0)
    return None


bpy.app.timers.register(zoom, first_interval=3.0)
bpy.app.timers.register(shoot, first_interval=5.0)
