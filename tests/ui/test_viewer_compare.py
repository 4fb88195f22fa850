"""The viewer's comparisons read one way (issue 20 item 6: the wipe put the result on the left,
side by side on the right): the source on the left, the result on the right, in both. Drawn by
the real widget offscreen and read back from its pixels."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QColor, QImage

from bridge.wire import protocol as p
from bridge.wire.client import EventKind, JobEvent
from cli.launch import tokenflow_command


@pytest.fixture
def viewer(qtbot, tmp_path, shipped_clip):
    from tests.ui.fake_link import FakeLink
    from ui.model.session import PanelSession
    from ui.paths import panel_dirs
    from ui.widgets.viewer import Viewer

    session = PanelSession("tcp://127.0.0.1:9", panel_dirs(tmp_path), launcher=tokenflow_command, link=FakeLink())
    session.clip.open(shipped_clip)
    session.clip.seek(4)
    white = QImage(176, 144, QImage.Format.Format_RGB888)
    white.fill(QColor(255, 255, 255))
    session.jobs.apply_event(JobEvent(EventKind.FRAME, "j1", 1, p.Frame(frame=4, shape=[144, 176, 3])), white)
    session.viewer.show_job("j1")
    widget = Viewer(session)
    widget.resize(800, 400)
    qtbot.addWidget(widget)
    yield session, widget
    session.close()


def _is_result(image: QImage, x: int, y: int) -> bool:
    colour = image.pixelColor(x, y)
    return min(colour.red(), colour.green(), colour.blue()) >= 250  # the all-white result


def test_wipe_and_side_by_side_put_the_source_left_and_the_result_right(viewer):
    session, widget = viewer
    for mode in ("wipe", "side"):
        session.viewer.set_mode(mode)
        session.viewer.set_wipe(0.5)
        shot = widget.grab().toImage()
        y = shot.height() // 2 + 20  # below the divider's handle and the labels
        left, right = shot.width() // 4, shot.width() * 3 // 4
        assert not _is_result(shot, left, y) and _is_result(shot, right, y), mode
