"""Where the panel's Export writes (issue 20 item 6: it wrote beside the source even with
--output-dir, and never said where): the folder the user named, said in the dialog and after."""

from __future__ import annotations

from pathlib import Path


def test_export_goes_to_the_output_dir_and_says_where(panel_factory, tmp_path, shipped_clip):
    out = tmp_path / "renders"
    out.mkdir()
    session, window = panel_factory("tcp://127.0.0.1:9", output_dir=out)
    dialog = window.export_dialog(str(shipped_clip), 0, 7)
    assert dialog.target().parent == out and str(out) in dialog.note.text()
    said = []
    session.notice.connect(lambda level, text: said.append(text))
    session._export_done([str(out / "clip_tokenflow_0-7.mov")], "")
    assert said == [f"Exported to {out}: clip_tokenflow_0-7.mov"]


def test_without_an_output_dir_export_goes_beside_the_source(panel_factory, shipped_clip):
    _, window = panel_factory("tcp://127.0.0.1:9")
    assert window.export_dialog(str(shipped_clip), 0, 7).target().parent == Path(shipped_clip).parent
