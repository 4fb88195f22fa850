"""A two-prompt job from the panel through a real `tokenflow serve` (tiny model, 64 px, 4 frames):
the form's list reaches the server, every tile of the Variants view fills with its own prompt's
frames (previews first), the history gets one entry per prompt, and Export writes the chosen
prompt's frames."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from bridge.wire.client import Client
from tests.e2e.conftest import serve  # noqa: F401  (the module's server fixture)

PROMPTS = ["a watercolor painting", "an oil painting"]


def _same_pixels(a: QImage, b: QImage) -> bool:
    a = a.convertToFormat(QImage.Format.Format_RGB888)
    b = b.convertToFormat(QImage.Format.Format_RGB888)
    return a.size() == b.size() and a.constBits().tobytes() == b.constBits().tobytes()


def test_a_two_prompt_job_fills_every_tile_and_the_history(qtbot, panel_factory, serve, shipped_clip,  # noqa: F811
                                                           tmp_path):
    session, window = panel_factory(serve.endpoint, tmp_path / "panel", serve.out)
    qtbot.waitUntil(lambda: session.connection.connected, timeout=20000)
    session.open_clip(shipped_clip)
    session.clip.set_marks(20, 23)
    panel = window.edit_panel
    panel.prompt.setPlainText(PROMPTS[0])
    qtbot.mouseClick(panel.add_variant_button, Qt.MouseButton.LeftButton)
    panel.variant_edits[0].setPlainText(PROMPTS[1])
    panel.advanced_toggle.click()
    panel.steps.setValue(3)
    panel.short_side.setValue(64)
    panel.kf_interval.setValue(4)
    arrived: list[tuple[str, int]] = []
    session.jobs.image_arrived.connect(lambda job, kind, frame, variant: arrived.append((kind, variant)))
    window.actions_by_name["submit"].trigger()

    qtbot.waitUntil(lambda: session.viewer.job is not None, timeout=20000)
    job = session.viewer.job
    qtbot.waitUntil(lambda: session.jobs.get(job).state in ("done", "failed"), timeout=120000)
    view = session.jobs.get(job)
    assert view.state == "done", view.message
    with Client(serve.endpoint, timeout=20) as client:
        info = {j.id: j for j in client.list_jobs()}[job]
    assert (info.prompt, list(info.variants)) == (PROMPTS[0], PROMPTS[1:])  # the form's list reached the server
    for variant in (0, 1):
        kinds = [k for k, v in arrived if v == variant]
        # Each prompt's tile had its own keyframe previews before its first full frame.
        assert "preview" in kinds and "frame" in kinds and kinds.index("preview") < kinds.index("frame"), variant
        assert sorted(view.pictures_of(variant).full) == [20, 21, 22, 23], variant
    # Two prompts, two different edits of the same frame.
    assert not _same_pixels(view.pictures_of(0).full[21], view.pictures_of(1).full[21])

    session.clip.seek(21)
    session.viewer.set_mode("variants")
    window.viewer.repaint()
    assert window.viewer.tile_kinds == {0: "frame", 1: "frame"}

    history = window.history_view
    qtbot.waitUntil(lambda: history.jobs() == [job, f"{job}#1"], timeout=5000)
    entries = session.history.versions(session.clip.current.key)
    assert [e.prompt for e in entries] == PROMPTS
    assert all(e.thumbnail for e in entries)
    assert all(len(e.outputs) == 1 and os.path.exists(e.outputs[0]) for e in entries)
    assert entries[0].outputs != entries[1].outputs

    # Export the second prompt: its frames, not the first's.
    from ui.model.export import export_formats, export_target

    png = next(f for f in export_formats() if f.name == "png8")
    target = export_target(png, tmp_path / "export", "carphone_oil")
    finished: list[tuple[list, str]] = []
    session.export_finished.connect(lambda paths, error: finished.append((paths, error)))
    assert session.export(f"{job}#1", png, target)
    qtbot.waitUntil(lambda: len(finished) == 1, timeout=30000)
    paths, error = finished[0]
    assert error == "" and len(paths) == 4
    exported = QImage(sorted(paths)[1])  # source frame 21
    assert _same_pixels(exported, view.pictures_of(1).full[21])
    assert not _same_pixels(exported, view.pictures_of(0).full[21])

    # Show the second prompt's entry with its pictures gone (as after a restart): every prompt's
    # stored frames come back from the server, each to its own prompt.
    first = {v: view.pictures_of(v).full[21] for v in (0, 1)}
    session.jobs.drop_pictures(set())
    history.list.setCurrentItem(history.list.item(1))
    qtbot.mouseClick(history.reload, Qt.MouseButton.LeftButton)
    assert (session.viewer.job, session.viewer.variant) == (job, 1)
    qtbot.waitUntil(lambda: all(len(view.pictures_of(v).full) == 4 for v in (0, 1)), timeout=20000)
    assert all(_same_pixels(view.pictures_of(v).full[21], first[v]) for v in (0, 1))
