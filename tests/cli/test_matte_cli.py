"""`--matte` from files to frames: a PNG sequence numbered like the source, a matte movie,
the source's own alpha; `tokenflow edit --matte` keeps the source outside it, exactly;
batch files carry the matte columns."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from bridge.media import MediaError, read_frames
from bridge.media.matte import check_matte, read_matte, sequence_path
from cli.batch import job_from_mapping
from tests.cli.test_edit import FAST, edit


def write_movie(path: Path, frames: list[np.ndarray], codec: str, pix_fmt: str, fmt: str = "rgb24") -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = pix_fmt
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format=fmt)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def bar(h: int, w: int, x: int) -> np.ndarray:
    matte = np.zeros((h, w), np.uint8)
    matte[:, x:] = 255
    return matte


def test_sequence_names_follow_the_source_numbering():
    assert sequence_path("/m/matte.%04d.png", 17).name == "matte.0017.png"
    assert sequence_path("/m/matte_####.png", 17).name == "matte_0017.png"
    assert sequence_path("/m/m%d.tif", 7).name == "m7.tif"


def test_a_png_sequence_with_alpha_gives_its_alpha_by_frame_number(tmp_path):
    for n in (3, 4, 5):
        rgba = np.full((16, 24, 4), 255, np.uint8)  # white everywhere: only the alpha says where
        rgba[..., 3] = bar(16, 24, n)
        Image.fromarray(rgba, "RGBA").save(tmp_path / f"roto.{n:04d}.png")
    mattes = list(read_matte(str(tmp_path / "roto.####.png"), "unused.mp4", 4, 5))
    assert [np.array_equal(m, bar(16, 24, n)) for m, n in zip(mattes, (4, 5))] == [True, True]
    with pytest.raises(MediaError, match="numbered like the source"):
        check_matte(str(tmp_path / "roto.%04d.png"), "unused.mp4", 4, 9, None)


def test_a_matte_movie_is_read_from_the_same_frame_numbers(tmp_path):
    h, w = 32, 48
    frames = [np.repeat(bar(h, w, 4 * n)[..., None], 3, axis=2) for n in range(8)]
    path = tmp_path / "matte.mov"
    write_movie(path, frames, "png", "rgb24")  # lossless: levels survive
    mattes = list(read_matte(str(path), "unused.mp4", 2, 4))
    assert [np.array_equal(m, bar(h, w, 4 * n)) for m, n in zip(mattes, (2, 3, 4))] == [True] * 3


def test_the_sources_own_alpha(tmp_path, shipped_clip):
    h, w = 32, 48
    rgba = [np.dstack([np.full((h, w, 3), 90, np.uint8), bar(h, w, 10 + n)]) for n in range(4)]
    source = tmp_path / "with_alpha.mov"
    write_movie(source, rgba, "png", "rgba", fmt="rgba")
    mattes = list(read_matte("alpha", source, 1, 2))
    assert np.array_equal(mattes[0], bar(h, w, 11)) and np.array_equal(mattes[1], bar(h, w, 12))
    with pytest.raises(MediaError, match="no alpha"):
        check_matte("alpha", shipped_clip, 0, 3, "yuv420p")


def test_edit_with_a_matte_keeps_the_source_outside_it_exactly(tiny_model_dir, shipped_clip, tmp_path):
    mattes = tmp_path / "mattes"
    mattes.mkdir()
    for n in range(5, 9):
        Image.fromarray(bar(144, 176, 60 + 10 * (n - 5)), "L").save(mattes / f"m_{n:04d}.png")
    out = tmp_path / "seq"
    out.mkdir()
    args = [str(shipped_clip), *FAST, "--frames", "5:8", "-o", str(out), "--matte", str(mattes / "m_%04d.png"),
            "--matte-feather", "4"]
    assert edit(args, tiny_model_dir, tmp_path / "c") == 0
    sources = list(read_frames(shipped_clip, 5, 8))
    files = sorted(out.iterdir())
    assert len(files) == 4
    for n, (path, source) in enumerate(zip(files, sources)):
        result = np.asarray(Image.open(path))
        if result.dtype != np.uint8:  # a 16-bit PNG: 8-bit source levels are multiples of 257
            result = (result.astype(np.uint32) // 257).astype(np.uint8)
        kept = slice(0, 60 + 10 * n - 8)  # left of the bar, beyond the feather
        assert np.array_equal(result[:, kept], source[:, kept])
        assert not np.array_equal(result[:, 100:], source[:, 100:])
    # Inverted, the other side is kept.
    out2 = tmp_path / "seq2"
    out2.mkdir()
    assert edit([*args[:-2], "--matte-invert", "-o", str(out2)], tiny_model_dir, tmp_path / "c") == 0


def test_batch_rows_carry_the_matte(tmp_path):
    job = job_from_mapping({"input": "clip.mp4", "prompt": "snow", "matte": "mattes/m_%04d.png",
                            "matte_invert": "yes", "matte_feather": "3.5"}, "row 1", 1, tmp_path, {})
    assert job.params == {"prompt": "snow", "matte": str(tmp_path / "mattes" / "m_%04d.png"),
                          "matte_invert": True, "matte_feather": 3.5}
    alpha = job_from_mapping({"input": "clip.mp4", "prompt": "snow", "matte": "alpha"}, "row 1", 1, tmp_path, {})
    assert alpha.params["matte"] == "alpha"
    with pytest.raises(ValueError, match="true or false"):
        job_from_mapping({"input": "c.mp4", "prompt": "s", "matte_invert": "maybe"}, "row 1", 1, tmp_path, {})


def test_a_matte_movie_shorter_than_the_range_is_refused_before_any_work(tmp_path):
    # Found by trying it: a 3-frame matte for frames 0..5 used to fail mid-edit (exit 1) with
    # the decoder's "may be truncated" message, which named neither the matte nor the fix.
    path = tmp_path / "short.mov"
    write_movie(path, [np.repeat(bar(16, 24, 4)[..., None], 3, axis=2)] * 3, "png", "rgb24")
    check_matte(str(path), "unused.mp4", 0, 2, None)
    with pytest.raises(MediaError, match=r"has 3 frame\(s\) \(0\.\.2\) but the edit needs frames 0\.\.5"):
        check_matte(str(path), "unused.mp4", 0, 5, None)
