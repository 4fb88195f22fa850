"""Nothing the user must read is cut off (issue 20 item 6): the range line with a long clip name,
the model box with a model given as a path, the queue's clip column; and the queue shows several
jobs before it scrolls. Real widgets, laid out offscreen at the panel's usual size."""

from __future__ import annotations

from bridge.wire import protocol as p


def _info(job: str, clip: str, prompt: str) -> p.JobInfo:
    return p.JobInfo(id=job, state="queued", created=1.0, updated=1.0, input=clip, prompt=prompt, frames="0:15",
                     output=None, priority=0, position=0, last_seq=1, attempts=1, outputs=[], error=None,
                     progress=None)


def test_labels_and_columns_show_their_whole_text(panel_factory, shipped_clip, tmp_path, qtbot):
    long_clip = tmp_path / "interview_camera_A_take_07_graded_final.mp4"
    long_clip.write_bytes(shipped_clip.read_bytes())
    session, window = panel_factory("tcp://127.0.0.1:9")
    window.resize(1600, 1000)
    session.open_clip(str(long_clip))
    qtbot.wait(50)
    label = window.edit_panel.range_label
    assert long_clip.name in label.text()
    if label.wordWrap():
        assert label.heightForWidth(label.width()) <= label.height()  # the whole text fits its box
    else:
        assert label.fontMetrics().horizontalAdvance(label.text()) <= label.contentsRect().width(), label.text()

    session.connection.on_connected(p.Welcome(models=["/home/me/models/sd21-house-style-finetune-v3"],
                                              default_model="/home/me/models/sd21-house-style-finetune-v3"))
    box = window.edit_panel.model
    assert box.fontMetrics().horizontalAdvance(box.itemText(0)) + 30 <= box.width(), (box.itemText(0), box.width())

    session.jobs.apply_list([_info(f"j{i}", str(long_clip), "a watercolor painting of a man in a car " * 3)
                             for i in range(10)])
    tree = window.queue_view.tree
    qtbot.wait(50)
    clip_column = 3
    assert tree.columnWidth(clip_column) >= tree.fontMetrics().horizontalAdvance(long_clip.name)
    rows_shown = tree.viewport().height() // max(1, tree.sizeHintForRow(0))
    assert rows_shown >= 5, rows_shown  # the issue saw three; the tree keeps at least four
