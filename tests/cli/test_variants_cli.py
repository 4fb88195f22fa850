"""`tokenflow edit -p A -p B`: several prompts in one pass, one output each, named after its prompt."""

from __future__ import annotations

from bridge.media import probe
from bridge.wire.naming import variant_outputs
from tests.cli.test_edit import edit


def test_outputs_are_named_after_their_prompts():
    assert variant_outputs("/o/shot.mp4", ["A watercolor", "snow!", "a watercolor"]) == [
        "/o/shot_a-watercolor.mp4", "/o/shot_snow.mp4", "/o/shot_a-watercolor_2.mp4"]
    assert variant_outputs("/o/frames/f_%04d.png", ["snow"]) == ["/o/frames/snow/f_%04d.png"]
    assert variant_outputs("/o/seq/", ["snow"]) == ["/o/seq/snow/"]


def test_two_prompts_in_one_pass_write_two_movies(tiny_model_dir, shipped_clip, tmp_path, capsys):
    out = tmp_path / "shot.mp4"
    args = [str(shipped_clip), "--size", "64", "--steps", "2", "-p", "a watercolor painting", "-p", "snow at night",
            "--frames", "3:6", "-o", str(out)]
    assert edit(args, tiny_model_dir, tmp_path / "c") == 0
    for name in ("shot_a-watercolor-painting.mp4", "shot_snow-at-night.mp4"):
        info = probe(tmp_path / name)
        assert (info.frame_count, info.width, info.height) == (4, 176, 144)
    assert not out.exists()
    assert "(snow at night)" in capsys.readouterr().out

