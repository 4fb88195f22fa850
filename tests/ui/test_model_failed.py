"""A server whose model did not load (issue 20 item 6): the panel's status dot was green, the
Server log showed a raw traceback, and a submit was accepted and then failed. Now the dot is
red, the status bar says why and what to do, and nothing is queued. Against a real server."""

from __future__ import annotations

from tests.e2e.conftest import ServeProcess
from ui.model.presets import EditForm
from ui.widgets import theme


def test_a_server_without_its_model_is_shown_as_unable_to_edit(panel_factory, tmp_path, shipped_clip, qtbot):
    serve = ServeProcess(tmp_path / "srv", tmp_path / "no-such-model").start()
    try:
        session, window = panel_factory(serve.endpoint)
        qtbot.waitUntil(lambda: session.connection.model_problem is not None, timeout=60000)
        assert not session.connection.healthy
        assert "cannot edit" in window.connection_label.text() and "restart the server" in window.connection_label.text()
        assert window.connection_dot.styleSheet() == f"color: {theme.ERROR.name()};"
        said = []
        session.notice.connect(lambda level, text: said.append((level, text)))
        session.open_clip(str(shipped_clip))
        assert session.submit(EditForm(prompt="ink")) is None
        assert said and said[-1][0] == "error" and "Nothing was queued" in said[-1][1]
        log = serve.log.read_text()
        assert "could not be loaded" in log and "Traceback" not in log
    finally:
        serve.stop()
