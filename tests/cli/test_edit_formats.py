"""`tokenflow edit --format`: one movie and one sequence end to end through the tiny model."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from bridge.media import probe
from cli.main import main
from tests.bridge.clips import NTSC, make_clip

FAST = ["--size", "64", "--steps", "2", "-p", "a watercolor painting", "--device", "cpu"]


def edit(args, model, cache) -> int:
    return main(["edit", *args, *FAST, "--model", str(model), "--cache-dir", str(cache)])


def test_prores_movie_keeps_rate_timecode_and_audio(tiny_model_dir, tmp_path):
    source = make_clip(tmp_path / "shot.mov", rate=NTSC, pictures=12, size=(128, 64), timecode="10:00:00;00",
                       audio_rate=48000, audio_codec="pcm_s16le")
    assert edit([str(source), "--frames", "4:7", "--format", "prores-422-hq"], tiny_model_dir, tmp_path / "c") == 0
    out = tmp_path / "shot_tokenflow.mov"  # the default name follows the preset's extension
    info = probe(out, scan=True)
    assert (info.frame_count, info.width, info.height, info.frame_rate) == (4, 128, 64, NTSC)
    assert info.start_timecode == "10:00:00;04"
    assert info.audio is not None and info.audio.codec == "pcm_s16le"
    assert abs(info.audio.duration_s - float(Fraction(4) / NTSC)) <= 1 / 48000
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv422p10le"


def test_png16_sequence_from_the_decoders_float_output(tiny_model_dir, shipped_clip, tmp_path):
    out = tmp_path / "plates" / "sh010_%04d.png"
    assert edit([str(shipped_clip), "--frames", "20:23", "-o", str(out), "--format", "png16", "--start-number", "1001"],
                tiny_model_dir, tmp_path / "c") == 0
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == [f"sh010_{n}.png" for n in range(1001, 1005)]
    with av.open(str(out.parent / names[0])) as container:
        frame = next(container.decode(video=0))
    assert frame.format.name == "rgb48be" and (frame.width, frame.height) == (176, 144)
    # Values between the 8-bit levels exist only if the writer got the decoder's floats.
    assert np.mean(frame.to_ndarray() % 257 != 0) > 0.5


def test_a_format_the_output_cannot_hold_is_refused_before_any_work(tiny_model_dir, shipped_clip, tmp_path, capsys):
    assert edit([str(shipped_clip), "-o", str(tmp_path / "x.mp4"), "--format", "prores_4444"],
                tiny_model_dir, tmp_path / "c") == 2
    assert "name it x.mov" in capsys.readouterr().err
    assert edit([str(shipped_clip), "--format", "dnxhr_hqx", "-o", str(tmp_path / "y.mov")],
                tiny_model_dir, tmp_path / "c") == 2
    assert "at least 256x120" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
