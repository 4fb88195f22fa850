"""Panel tests: real Qt widgets on the offscreen platform, a real server where one is needed."""

from __future__ import annotations

import os

import pytest

# Before anything imports Qt: no display on test machines.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def panel_factory(qtbot, tmp_path):
    """make(endpoint, data_dir=..., output_dir=...) -> (session, window); all closed at the end."""
    from cli.launch import tokenflow_command
    from ui.model.session import PanelSession
    from ui.paths import panel_dirs
    from ui.widgets.main_window import MainWindow

    made = []

    def make(endpoint: str, data_dir=None, output_dir=None, results=None):
        session = PanelSession(endpoint, panel_dirs(data_dir or tmp_path / "panel"), launcher=tokenflow_command,
                               output_dir=str(output_dir) if output_dir else None,
                               result_sink=(results.append if results is not None else lambda line: None))
        window = MainWindow(session)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        session.start()
        made.append(window)
        return session, window

    yield make
    for window in made:
        window.close()
