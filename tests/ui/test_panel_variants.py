"""Several prompts in one job, in the panel (issue 18 item 2): the form sends them as
`params.variants`, the viewer tiles the source and every prompt's result (previews first, then
frames, as the events say which prompt each picture is), and the history keeps each prompt as
its own entry. Real widgets offscreen; the server's answers are events the test makes (the
end-to-end run against a real server is in test_panel_variants_e2e.py)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage

from bridge.wire import protocol as p
from bridge.wire.client import EventKind, JobEvent
from cli.launch import tokenflow_command

PROMPTS = ["a watercolor painting", "an oil painting", "a pencil sketch"]
# One flat colour per prompt, previews a darker shade: a tile's middle says what it shows.
FRAME_COLOURS = [QColor(250, 30, 30), QColor(30, 250, 30), QColor(30, 30, 250)]
PREVIEW_COLOURS = [QColor(120, 10, 10), QColor(10, 120, 10), QColor(10, 10, 120)]


def _flat(colour: QColor, w: int = 176, h: int = 144) -> QImage:
    image = QImage(w, h, QImage.Format.Format_RGB888)
    image.fill(colour)
    return image


@pytest.fixture
def panel(qtbot, tmp_path, shipped_clip):
    from tests.ui.fake_link import FakeLink
    from ui.model.session import PanelSession
    from ui.paths import panel_dirs
    from ui.widgets.main_window import MainWindow

    link = FakeLink()
    session = PanelSession("tcp://127.0.0.1:9", panel_dirs(tmp_path), launcher=tokenflow_command, link=link)
    window = MainWindow(session)
    qtbot.addWidget(window)
    window.resize(1400, 860)
    window.show()
    qtbot.waitExposed(window)
    session.start()  # the fake answers at once: connected
    session.open_clip(shipped_clip)
    session.clip.set_marks(20, 23)
    yield session, window, link
    window.close()


def _submit_three(qtbot, window, link) -> tuple[str, p.JobSpec]:
    panel = window.edit_panel
    panel.prompt.setPlainText(PROMPTS[0])
    for text in PROMPTS[1:]:
        qtbot.mouseClick(panel.add_variant_button, Qt.MouseButton.LeftButton)
        panel.variant_edits[-1].setPlainText(text)
    window.actions_by_name["submit"].trigger()
    return link.submits[-1]


def _accept(session, link, token: str, job: str = "j1") -> None:
    link.submitted.emit(token, JobEvent(EventKind.ACCEPTED, job, 1, p.Accepted(position=0)))


def _tile_colour(window, variant: int) -> QColor:
    """The colour in the middle of a variant's tile (-1: the source's) as the viewer draws it."""
    viewer = window.viewer
    shot = viewer.grab().toImage()
    rect = next(r for r, v in viewer.tile_rects if v == variant)
    return shot.pixelColor(int(rect.center().x()), int(rect.center().y()) + 20)


def _near(a: QColor, b: QColor) -> bool:
    return max(abs(a.red() - b.red()), abs(a.green() - b.green()), abs(a.blue() - b.blue())) <= 12


def test_the_form_sends_every_prompt_and_presets_keep_them(qtbot, panel):
    from ui.model.presets import EditForm, PresetStore

    session, window, link = panel
    form = window.edit_panel
    form.prompt.setPlainText(PROMPTS[0])
    for text in (PROMPTS[1], "", PROMPTS[2], "a claymation still"):
        qtbot.mouseClick(form.add_variant_button, Qt.MouseButton.LeftButton)
        form.variant_edits[-1].setPlainText(text)
    # The last one's ✕ removes that row.
    qtbot.wait(20)
    last_row = form._variant_rows[-1]
    assert last_row.isVisible()
    remove = last_row.findChildren(type(form.add_variant_button))[0]
    qtbot.mouseClick(remove, Qt.MouseButton.LeftButton)
    assert not last_row.isVisible()
    # Emptied by code too (a preset, a shown version): the rows leave the form at once, without
    # waiting for the event loop to delete them.
    qtbot.wait(20)  # a row added to a shown form shows at the next turn of the event loop
    rows = list(form._variant_rows)
    assert rows and all(row.isVisible() for row in rows)
    form.set_form(EditForm(prompt="x"))
    assert form.variant_edits == [] and not any(row.isVisible() for row in rows)
    form.set_form(EditForm(prompt=PROMPTS[0], variants=(PROMPTS[1], "", PROMPTS[2])))
    assert [e.toPlainText() for e in form.variant_edits] == [PROMPTS[1], "", PROMPTS[2]]
    window.actions_by_name["submit"].trigger()
    _token, spec = link.submits[-1]
    # The blank box the user added and left empty is not sent; the others in their order.
    assert spec.params["prompt"] == PROMPTS[0] and spec.params["variants"] == PROMPTS[1:]

    # Presets save and load the variants too (through the file: a new store reads it back).
    session.presets.save("three looks", form.form())
    form.set_form(EditForm(prompt="other"))
    assert form.variant_edits == []
    again = PresetStore(session.presets.path)
    form.set_form(again.presets["three looks"])
    assert [e.toPlainText() for e in form.variant_edits] == [PROMPTS[1], "", PROMPTS[2]]

    # No more rows than the wire accepts.
    from bridge.wire.edit_params import MAX_VARIANTS

    for _ in range(MAX_VARIANTS + 2):
        form.add_variant("x")
    assert len(form.variant_edits) == MAX_VARIANTS and not form.add_variant_button.isEnabled()


def test_variants_view_tiles_each_prompts_pictures_as_they_arrive(qtbot, panel):
    session, window, link = panel
    token, _spec = _submit_three(qtbot, window, link)
    _accept(session, link, token)
    assert window.queue_view.tree.topLevelItem(0).text(1).startswith("3 prompts: ")
    session.clip.seek(21)
    window.actions_by_name["mode_variants"].trigger()
    assert session.viewer.mode.value == "variants"

    seq = 2
    for variant in range(3):  # keyframe previews first, each prompt's own
        link.job_event.emit(JobEvent(EventKind.PROXY, "j1", seq, p.Proxy(kind="preview", frame=20, variant=variant)),
                            _flat(PREVIEW_COLOURS[variant], 32, 24))
        seq += 1
    window.viewer.repaint()
    assert len(window.viewer.tile_rects) == 4  # the source and three results
    for variant in range(3):
        assert _near(_tile_colour(window, variant), PREVIEW_COLOURS[variant]), variant
    assert window.viewer.tile_kinds == {0: "preview", 1: "preview", 2: "preview"}

    for variant in range(3):
        for frame in range(20, 24):
            link.job_event.emit(JobEvent(EventKind.FRAME, "j1", seq, p.Frame(frame=frame, shape=[144, 176, 3],
                                                                            variant=variant)),
                                _flat(FRAME_COLOURS[variant]))
            seq += 1
    for variant in range(3):
        assert _near(_tile_colour(window, variant), FRAME_COLOURS[variant]), variant
    assert window.viewer.tile_kinds == {0: "frame", 1: "frame", 2: "frame"}
    source = _tile_colour(window, -1)
    assert not any(_near(source, c) for c in FRAME_COLOURS)  # the source tile is the clip itself
    # Every tile keeps the source's aspect (176x144): the pictures are as wide as the tiles allow.
    rects = [r for r, _ in window.viewer.tile_rects]
    assert len({(round(r.width()), round(r.height())) for r in rects}) == 1

    # A click on the third tile makes it the result the single-result modes show.
    rect = next(r for r, v in window.viewer.tile_rects if v == 2)
    qtbot.mouseClick(window.viewer, Qt.MouseButton.LeftButton, pos=QPoint(int(rect.center().x()),
                                                                          int(rect.center().y())))
    assert session.viewer.variant == 2
    assert window.edit_panel.variant_box.currentIndex() == 2 and window.edit_panel.variant_box.count() == 3
    session.viewer.set_mode("result")
    window.viewer.repaint()
    shot = window.viewer.grab().toImage()
    assert _near(shot.pixelColor(shot.width() // 2, shot.height() // 2), FRAME_COLOURS[2])
    # The selector picks another.
    window.edit_panel.variant_box.activated.emit(1)
    shot = window.viewer.grab().toImage()
    assert _near(shot.pixelColor(shot.width() // 2, shot.height() // 2), FRAME_COLOURS[1])


def test_the_history_keeps_each_prompt_as_its_own_entry(qtbot, panel):
    session, window, link = panel
    token, _spec = _submit_three(qtbot, window, link)
    _accept(session, link, token)
    seq = 2
    for variant in range(3):
        link.job_event.emit(JobEvent(EventKind.FRAME, "j1", seq, p.Frame(frame=20, shape=[144, 176, 3],
                                                                        variant=variant)),
                            _flat(FRAME_COLOURS[variant]))
        seq += 1
    outputs = [[f"/out/j1_{n}.mp4"] for n in range(3)]
    link.job_event.emit(JobEvent(EventKind.DONE, "j1", seq, p.Done(
        outputs=[o for out in outputs for o in out], frames=4, first_frame=20,
        variants=[p.VariantOutputs(prompt=pr, outputs=out) for pr, out in zip(PROMPTS, outputs, strict=True)])),
        None)

    history = window.history_view
    assert history.jobs() == ["j1", "j1#1", "j1#2"]
    texts = [history.list.item(i).text() for i in range(3)]
    for n, text in enumerate(texts):
        assert text.startswith(PROMPTS[n]) and f"variant {n + 1} of 3" in text
    entries = session.history.versions(session.clip.current.key)
    assert [e.outputs for e in entries] == outputs
    # Each entry's thumbnail is its own prompt's picture.
    from ui.images import image_from_png

    for n, entry in enumerate(entries):
        thumb = image_from_png(entry.thumbnail)
        assert _near(thumb.pixelColor(thumb.width() // 2, thumb.height() // 2), FRAME_COLOURS[n]), n

    # Show the second: it comes on screen, and into the form as a one-prompt edit.
    history.list.item(1).setSelected(True)
    qtbot.mouseClick(history.reload, Qt.MouseButton.LeftButton)
    assert (session.viewer.job, session.viewer.variant) == ("j1", 1)
    assert window.edit_panel.prompt.toPlainText() == PROMPTS[1] and window.edit_panel.variant_edits == []
    # Make again on the third: that prompt alone, a new job.
    history.list.clearSelection()
    history.list.item(2).setSelected(True)
    qtbot.mouseClick(history.again, Qt.MouseButton.LeftButton)
    _token, spec = link.submits[-1]
    assert spec.params["prompt"] == PROMPTS[2] and "variants" not in spec.params
    # The history survives a restart with its entries (the variants' own table).
    from ui.model.history import HistoryStore

    store = HistoryStore(session.history.store.path)
    try:
        assert [e.key for e in store.for_clip(session.clip.current.key)] == ["j1", "j1#1", "j1#2"]
        third = store.get("j1#2")
        assert third is not None and (third.prompt, third.outputs) == (PROMPTS[2], outputs[2])
    finally:
        store.close()


def test_a_job_that_finished_while_the_panel_was_away_gets_each_prompts_files_from_the_listing(qtbot, panel):
    session, window, link = panel
    token, _spec = _submit_three(qtbot, window, link)
    _accept(session, link, token)
    # No done event reached the panel (it was closed): the listing alone says the job is done,
    # with every prompt's files in one flat list (sequences: a file a frame, prompt by prompt).
    outputs = [[f"/out/j1_{n}/f_{frame:04d}.png" for frame in range(20, 24)] for n in range(3)]
    info = p.JobInfo(id="j1", state="done", created=1.0, updated=2.0, input="clip.mp4", prompt=PROMPTS[0],
                     frames="20:23", output="/out/j1/f_%04d.png", priority=0, position=None, last_seq=9,
                     attempts=1, outputs=[o for out in outputs for o in out], error=None, progress=None,
                     variants=PROMPTS[1:], n_frames=4)
    link.jobs_listed.emit([info])
    entries = session.history.versions(session.clip.current.key)
    assert [e.outputs for e in entries] == outputs


def test_showing_a_finished_several_prompt_job_fetches_every_prompts_frames(qtbot, panel):
    session, window, link = panel
    token, _spec = _submit_three(qtbot, window, link)
    _accept(session, link, token)
    link.job_event.emit(JobEvent(EventKind.DONE, "j1", 2, p.Done(outputs=["/o/a.mp4"], frames=4, first_frame=20)),
                        None)
    link.asked.clear()
    session.reload("j1#2")
    assert [a for a in link.asked if a[0] == "fetch"] == [("fetch", "j1"), ("fetch", "j1#1"), ("fetch", "j1#2")]
