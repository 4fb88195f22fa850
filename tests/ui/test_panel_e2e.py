"""The panel with real widgets against a real `tokenflow serve` (tiny model, 64 px, 8 frames).

Keys are pressed on the window as a user would (I/O, arrows, Ctrl+Enter), the clip is
dropped on the viewer, buttons of the queue are clicked; what the tests read back is
what the widgets show and what the server says.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PySide6.QtWidgets import QApplication

from bridge.editors.handoff import ClipRef, HandoffRequest, HandoffResult
from bridge.wire.client import Client
from tests.e2e.conftest import REPO, serve  # noqa: F401  (the module's server fixture)

PROMPT = "a watercolor painting"


def _drop(widget, path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    at = widget.rect().center()
    enter = QDragEnterEvent(at.toPointF().toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(at), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    assert drop.isAccepted()


def _press(qtbot, window, key, modifier=Qt.KeyboardModifier.NoModifier, times=1) -> None:
    for _ in range(times):
        qtbot.keyClick(window.viewer, key, modifier)


def _set_small(panel, steps: int) -> None:
    """The tiny model's sizes, typed into the folded-away advanced section."""
    panel.advanced_toggle.click()
    panel.steps.setValue(steps)
    panel.short_side.setValue(64)
    panel.kf_interval.setValue(4)


def _server_jobs(endpoint: str) -> dict:
    with Client(endpoint, timeout=20) as c:
        return {j.id: j for j in c.list_jobs()}


@pytest.fixture(scope="module")
def panel_data(tmp_path_factory):
    return tmp_path_factory.mktemp("panel-data")


def test_edit_a_marked_range_and_watch_it_arrive(qtbot, panel_factory, serve, shipped_clip, panel_data):  # noqa: F811
    session, window = panel_factory(serve.endpoint, panel_data, serve.out)
    qtbot.waitUntil(lambda: session.connection.connected, timeout=20000)
    assert not window.start_button.isVisible()

    _drop(window.viewer, shipped_clip)
    assert session.clip.current is not None and session.clip.current.info.frame_count == 120
    # 20 with two Shift+Right, I; seven Right, O: frames 20..27 as an editor marks them.
    _press(qtbot, window, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier, times=2)
    _press(qtbot, window, Qt.Key.Key_I)
    _press(qtbot, window, Qt.Key.Key_Right, times=7)
    _press(qtbot, window, Qt.Key.Key_O)
    assert session.clip.range == (20, 27)
    assert window.transport.marks_label.text() == "in 20 → 27  (8 frames)"
    assert window.transport.timecode.text() == "00:00:00:27"

    panel = window.edit_panel
    qtbot.keyClicks(panel.prompt, PROMPT)
    _set_small(panel, steps=3)
    arrived: list[tuple[str, int]] = []
    session.jobs.image_arrived.connect(lambda job, kind, frame: arrived.append((kind, frame)))
    shown: set[str] = set()
    session.jobs.image_arrived.connect(lambda *a: (window.viewer.repaint(), shown.add(window.viewer.shown_kind)))
    _press(qtbot, window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)

    qtbot.waitUntil(lambda: session.viewer.job is not None, timeout=20000)
    job = session.viewer.job
    qtbot.waitUntil(lambda: session.jobs.get(job).state == "done", timeout=90000)
    view = session.jobs.get(job)
    kinds = [k for k, _ in arrived]
    assert "preview" in kinds and "frame" in kinds
    assert kinds.index("preview") < kinds.index("frame")  # previews first, then the full frames
    assert sorted(view.full) == list(range(20, 28))
    assert {"preview", "frame"} <= shown  # the viewer drew both while they came in
    assert view.full[20].size().width() == 176  # the source's size, not the 64 px working size
    # The server ran what the form said.
    info = _server_jobs(serve.endpoint)[job]
    assert (info.frames, info.prompt, info.state) == ("20:27", PROMPT, "done")
    assert os.path.exists(info.outputs[0]) and info.outputs[0].startswith(str(serve.out))

    # Compare: wipe at the playhead, then side by side, both drawing source and the result frame.
    session.clip.seek(24)
    _press(qtbot, window, Qt.Key.Key_3)
    window.viewer.repaint()
    assert session.viewer.mode.value == "wipe" and window.viewer.shown_kind == "frame"
    rect = window.viewer.rect()
    qtbot.mouseClick(window.viewer, Qt.MouseButton.LeftButton, pos=QPoint(rect.width() * 2 // 5, rect.height() // 2))
    assert 0.0 < session.viewer.wipe < 0.5  # the divider followed the click
    _press(qtbot, window, Qt.Key.Key_4)
    assert session.viewer.mode.value == "side"

    history = window.history_view
    qtbot.waitUntil(lambda: history.jobs() == [job], timeout=5000)
    version = session.history.get(job)
    assert version.state == "done" and version.thumbnail and version.params["steps"] == 3


def test_queue_reorder_pause_cancel_retry_remove(qtbot, panel_factory, serve, shipped_clip, panel_data):  # noqa: F811
    session, window = panel_factory(serve.endpoint, panel_data, serve.out)
    qtbot.waitUntil(lambda: session.connection.connected, timeout=20000)
    session.open_clip(shipped_clip)
    panel = window.edit_panel
    _set_small(panel, steps=500)  # long enough to be running while the test acts; all three end cancelled
    jobs: list[str] = []
    before = len(session.history.versions(session.clip.current.key))
    for first, prompt in ((0, "long running"), (30, "second"), (60, "third")):
        session.clip.set_marks(first, first + 7)
        panel.prompt.setPlainText(prompt)
        window.actions_by_name["submit"].trigger()
        submitted = len(jobs)
        qtbot.waitUntil(lambda n=submitted: len(session.history.versions(session.clip.current.key)) > before + n,
                        timeout=20000)
        jobs.append(session.viewer.job)
    running, second, third = jobs
    qtbot.waitUntil(lambda: session.jobs.get(running).state == "running", timeout=30000)
    qtbot.waitUntil(lambda: session.jobs.queue_order() == [second, third], timeout=10000)

    queue = window.queue_view
    queue.select(third)
    qtbot.mouseClick(queue.up, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.jobs.queue_order() == [third, second], timeout=10000)
    on_server = _server_jobs(serve.endpoint)
    assert (on_server[third].position, on_server[second].position) == (0, 1)

    # Pause the queue: the running job goes on, nothing new starts after it.
    qtbot.waitUntil(lambda: queue.pause.isVisible(), timeout=5000)
    qtbot.mouseClick(queue.pause, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.jobs.paused is True, timeout=10000)
    with Client(serve.endpoint, timeout=20) as c:
        assert c.queue().paused

    queue.select(second)
    assert queue.cancel.isEnabled()
    qtbot.mouseClick(queue.cancel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.jobs.get(second).state == "cancelled", timeout=10000)
    qtbot.waitUntil(lambda: session.history.get(second).state == "cancelled", timeout=5000)
    # Retry it: the same job is queued again, a second attempt.
    queue.select(second)
    assert queue.retry.isEnabled()
    qtbot.mouseClick(queue.retry, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.jobs.get(second).state == "queued", timeout=10000)
    assert session.history.get(second).state == "queued"
    assert _server_jobs(serve.endpoint)[second].state == "queued"  # the same job, not a new one

    # The cancel of the version on screen is always there: the long job stops with it.
    session.viewer.show_job(running)
    assert panel.cancel_button.isVisible() and panel.cancel_button.isEnabled()
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.jobs.get(running).state == "cancelled", timeout=30000)
    on_server = _server_jobs(serve.endpoint)
    assert (on_server[third].state, on_server[second].state) == ("queued", "queued")  # paused: nothing started
    for job in (second, third):
        session.cancel(job)
    qtbot.waitUntil(lambda: all(session.jobs.get(j).terminal for j in jobs), timeout=30000)
    qtbot.mouseClick(queue.pause, Qt.MouseButton.LeftButton)  # resume, for the tests after this one
    qtbot.waitUntil(lambda: session.jobs.paused is False, timeout=10000)

    qtbot.waitUntil(lambda: session.history.get(second).state == "cancelled", timeout=5000)
    queue.select(second)
    qtbot.mouseClick(queue.remove, Qt.MouseButton.LeftButton)
    assert second not in [j.id for j in session.jobs.ordered()]
    qtbot.waitUntil(lambda: second not in _server_jobs(serve.endpoint), timeout=10000)  # the server forgot it
    assert session.history.get(second) is not None  # the history keeps the version


def test_a_restarted_panel_finds_its_history(qtbot, panel_factory, serve, shipped_clip, panel_data,  # noqa: F811
                                             tmp_path):
    # The earlier tests' panels are closed; the server restarts too. A new widget tree on the same data folder:
    serve.stop()
    serve.start()
    session, window = panel_factory(serve.endpoint, panel_data, serve.out)
    qtbot.waitUntil(lambda: session.connection.connected, timeout=20000)
    session.open_clip(shipped_clip)
    history = window.history_view
    done = [v for v in session.history.versions(session.clip.current.key) if v.state == "done"]
    assert len(done) == 1 and history.list.count() == len(session.history.versions(session.clip.current.key))
    job = done[0].job_id
    assert not history.list.item(history.jobs().index(job)).icon().isNull()  # its thumbnail
    # Reload it: its range and parameters come back, and its frames come from the server's store.
    item = history.list.item(history.jobs().index(job))
    history.list.setCurrentItem(item)
    qtbot.mouseClick(history.reload, Qt.MouseButton.LeftButton)
    assert session.clip.range == (20, 27) and window.edit_panel.prompt.toPlainText() == PROMPT
    assert window.edit_panel.steps.value() == 3
    qtbot.waitUntil(lambda: len(session.jobs.get(job).full) == 8 if session.jobs.get(job) else False,
                    timeout=20000)
    session.clip.seek(22)
    window.viewer.repaint()
    assert window.viewer.shown_kind == "frame"

    # Export it as a PNG sequence numbered with the source frames; a second export to the
    # same place is refused rather than written over.
    from ui.model.export import export_formats, export_target

    png = next(f for f in export_formats() if f.name == "png8")
    target = export_target(png, tmp_path / "export", "carphone_ink")
    finished = []
    notices = []
    session.notice.connect(lambda level, text: notices.append(text))
    session.export_finished.connect(lambda paths, error: finished.append((paths, error)))
    assert session.export(job, png, target), notices
    qtbot.waitUntil(lambda: len(finished) == 1, timeout=30000)
    paths, error = finished[0]
    assert error == "" and sorted(os.path.basename(p) for p in paths) == [
        f"carphone_ink_{n:06d}.png" for n in range(20, 28)]
    assert QImage(paths[0]).size().toTuple() == (176, 144)
    before = {p: os.path.getmtime(p) for p in paths}
    assert session.export(job, png, target)
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=30000)
    assert finished[1][0] == [] and "exist" in finished[1][1]
    assert {p: os.path.getmtime(p) for p in paths} == before


def test_no_server_offers_to_start_one_and_says_what_to_do(qtbot, panel_factory, shipped_clip, tmp_path,
                                                           tiny_model_dir, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    session, window = panel_factory(f"tcp://127.0.0.1:{port}", tmp_path / "p")
    qtbot.waitUntil(lambda: session.connection.state.value == "unreachable", timeout=20000)
    assert window.start_button.isVisible()
    assert "tokenflow serve" in window.connection_label.text()
    session.open_clip(shipped_clip)
    window.edit_panel.prompt.setPlainText(PROMPT)
    window.actions_by_name["submit"].trigger()
    assert window.banner.isVisible() and "Not connected" in window.banner.text()
    assert session.history.versions(session.clip.current.key) == []  # nothing looks queued

    # Take the offer: the panel starts `tokenflow serve` as its child and shows its log.
    for name, value in (("TOKENFLOW_MODEL", tiny_model_dir), ("TOKENFLOW_DATA_DIR", tmp_path / "data"),
                        ("TOKENFLOW_CACHE_DIR", tmp_path / "cache"), ("PYTHONPATH", REPO)):
        monkeypatch.setenv(name, str(value))
    qtbot.mouseClick(window.start_button, Qt.MouseButton.LeftButton)
    assert session.connection.state.value == "starting" and not window.start_button.isVisible()
    qtbot.waitUntil(lambda: session.connection.connected, timeout=120000)
    assert "listening on" in window.log_view.toPlainText()
    process = session.server.process
    window.close()  # the panel's own server goes with it
    assert process.state() == process.ProcessState.NotRunning


def test_editor_handoff_through_the_command(serve, shipped_clip, tmp_path):  # noqa: F811
    """`tokenflow panel --handoff -` as a launcher runs it: request on stdin, results on stdout."""
    request = HandoffRequest(
        clips=[ClipRef(media=str(shipped_clip), first=40, last=43, frame_rate="30000/1001", name="carphone",
                       editor="resolve")],
        mode="submit", prompt="ink", seed=4, output_dir=str(serve.out),
        params={"steps": 2, "short_side": 64, "kf_interval": 4})
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen", "TOKENFLOW_PANEL_DIR": str(tmp_path)}
    child = subprocess.Popen([sys.executable, "-m", "cli", "panel", "--handoff", "-", "--server",
                              serve.endpoint], cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        child.stdin.write(request.to_json() + "\n")
        child.stdin.flush()  # kept open, as a launcher may
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in child.stdout], daemon=True).start()
        results = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (results and results[-1].state == "done"):
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                break  # a result line that never comes (not flushed, not printed) fails below
            result = HandoffResult.from_line(line.rstrip("\n"))
            if result is not None:
                results.append(result)
        assert [r.state for r in results] == ["queued", "done"], results
        done = results[-1]
        assert done.clip_index == 0 and done.prompt == "ink" and done.seed == 4
        assert done.output.startswith(str(serve.out)) and os.path.exists(done.output)
    finally:
        child.terminate()
        child.wait(20)
