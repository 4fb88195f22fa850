"""The panel's matte: loaded, it tints the edited region of the source in the viewer and
goes with the next submit's params; a picked frame of a numbered sequence becomes its pattern."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tests.ui.test_panel_models import tokenflow_command
from ui.widgets.matte_row import sequence_spec


def test_a_picked_frame_of_a_sequence_becomes_its_pattern():
    assert sequence_spec("/m/roto.0012.png") == "/m/roto.%04d.png"
    assert sequence_spec("/m/matte.mov") == "/m/matte.mov"
    assert sequence_spec("/m/still.png") == "/m/still.png"


def test_the_matte_overlay_tints_the_edited_region(qtbot, tmp_path, shipped_clip):
    from ui.model.session import PanelSession
    from ui.paths import panel_dirs
    from ui.widgets.edit_panel import EditPanel  # noqa: F401  (the row lives in the panel)
    from ui.widgets.matte_row import MatteRow
    from ui.widgets.viewer import Viewer

    for n in range(0, 3):
        matte = np.zeros((144, 176), np.uint8)
        matte[:, 88:] = 255  # the right half is edited
        Image.fromarray(matte, "L").save(tmp_path / f"m.{n:04d}.png")
    session = PanelSession("tcp://127.0.0.1:9", panel_dirs(tmp_path), launcher=tokenflow_command)
    try:
        assert session.clip.open(shipped_clip) is not None
        viewer = Viewer(session)
        qtbot.addWidget(viewer)
        viewer.resize(616, 416)
        before = viewer.grab().toImage()
        row = MatteRow(session.matte)
        qtbot.addWidget(row)
        session.matte.set(str(tmp_path / "m.%04d.png"), False, 3.0)
        assert row.name.text() == "m.%04d.png"
        after = viewer.grab().toImage()
        y = after.height() // 2
        xs = [x for x in range(after.width()) if before.pixelColor(x, y) != after.pixelColor(x, y)]
        assert xs, "the overlay changed nothing"
        centre = (min(xs) + max(xs)) / 2
        assert min(xs) > after.width() / 2 - 10  # only the right (edited) half is tinted
        tinted = after.pixelColor(int(centre), y)
        plain = before.pixelColor(int(centre), y)
        assert tinted.red() >= plain.red() and tinted.blue() <= plain.blue()
        assert session.matte.params() == {"matte": str(tmp_path / "m.%04d.png"), "matte_invert": False,
                                          "matte_feather": 3.0}
        session.matte.show_overlay(False)
        assert viewer.grab().toImage() == before
    finally:
        session.close()
