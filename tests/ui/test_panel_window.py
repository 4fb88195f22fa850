"""A real window on a real X server (Xvfb), grabbed from the screen; skipped where Xvfb is not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="Xvfb is not installed (apt-get install xvfb)")
def test_the_panel_window_on_an_x_server(qapp, tmp_path):
    from PySide6.QtGui import QImage

    out = tmp_path / "window.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": str(REPO)}
    subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", sys.executable,
                    str(REPO / "tests" / "ui" / "panel_screenshots.py"), "--only-window", str(out)],
                   cwd=REPO, env=env, check=True, timeout=120, capture_output=True)
    image = QImage(str(out))
    assert image.width() >= 1200 and image.height() >= 700
    # The clip's picture is on screen: the viewer's middle holds many colours, not a flat fill.
    colours = {image.pixel(x, y) for x in range(300, 800, 7) for y in range(150, 450, 7)}
    assert len(colours) > 200
