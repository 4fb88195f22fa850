"""`tokenflow edit` end to end on real footage, and its answers to bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from bridge.media import probe
from cli.main import main

FAST = ["--size", "64", "--steps", "2", "-p", "a watercolor painting"]


def edit(args: list[str], model: Path, cache: Path) -> int:
    return main(["edit", *args, "--model", str(model), "--device", "cpu", "--cache-dir", str(cache)])


def test_movie_keeps_count_size_and_ntsc_rate(tiny_model_dir, shipped_clip, tmp_path):
    out, stats = tmp_path / "out.mp4", tmp_path / "stats.json"
    assert edit([str(shipped_clip), *FAST, "--frames", "10:29", "-o", str(out), "--stats", str(stats)],
                tiny_model_dir, tmp_path / "cache") == 0
    info = probe(out)
    assert (info.frame_count, info.width, info.height) == (20, 176, 144)
    assert info.frame_rate == Fraction(30000, 1001)
    data = json.loads(stats.read_text())
    for key in ("frames", "working_size", "unet_passes", "seconds", "total_seconds", "first_preview_seconds",
                "peak_memory_bytes", "inversion_cached"):
        assert key in data
    # 176x144 at --size 64: 78x64 of picture (its aspect), reflect-padded to 128x64 (was stretched square).
    assert data["frames"] == 20 and data["working_size"] == [128, 64] and data["content_size"] == [78, 64]
    assert data["unet_passes"]["inversion"] == 20 * 2 and data["inversion_cached"] is False
    assert not list(tmp_path.glob(".*partial*"))


def test_image_sequence_numbered_from_source_frames(tiny_model_dir, shipped_clip, tmp_path):
    out = tmp_path / "seq"
    out.mkdir()
    assert edit([str(shipped_clip), *FAST, "--frames", "5:9", "-o", str(out)], tiny_model_dir, tmp_path / "c") == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{n:06d}.png" for n in range(5, 10)]
    from PIL import Image

    assert Image.open(out / names[0]).size == (176, 144)


def test_wide_and_hd_clips_come_back_at_source_size(tiny_model_dir, shared_media, tmp_path):
    mov = tmp_path / "bikes.mov"
    assert edit([str(shared_media / "bikes.mp4"), *FAST, "--frames", "140:147", "-o", str(mov)],
                tiny_model_dir, tmp_path / "c") == 0
    info = probe(mov)
    assert (info.frame_count, info.width, info.height, info.frame_rate) == (8, 640, 272, Fraction(25))
    pattern = tmp_path / "bbb" / "f_%04d.png"
    assert edit([str(shared_media / "bigbuckbunny.mp4"), *FAST, "--frames", "128:131", "-o", str(pattern)],
                tiny_model_dir, tmp_path / "c") == 0
    from PIL import Image

    files = sorted((tmp_path / "bbb").iterdir())
    assert [p.name for p in files] == [f"f_{n:04d}.png" for n in range(128, 132)]
    assert Image.open(files[-1]).size == (1280, 720)


@pytest.mark.parametrize(
    "make_args, expected",
    [
        (lambda d, clip: [str(d / "missing.mp4")], "does not exist"),
        (lambda d, clip: [str(_text_file(d))], "video"),
        (lambda d, clip: [str(clip), "--frames", "100:500"], "0:119"),
        (lambda d, clip: [str(clip), "--frames", "9:3"], "empty"),
        (lambda d, clip: [str(clip), "--size", "16"], "64..2048"),
        (lambda d, clip: [str(clip), "-o", str(d / "out.avi")], ".mp4"),
        (lambda d, clip: [str(clip), "-o", str(_text_file(d) / "sub" / "out.mp4")], "is a file"),
        (lambda d, clip: [str(clip), "--model", str(d / "no-such-model")], "does not exist"),
        (lambda d, clip: [str(clip), "-p", " "], "prompt"),
        (lambda d, clip: [str(clip), "--max-joint-keyframes", "1"], "--max-joint-keyframes"),
    ],
)
def test_bad_input_exits_with_one_clear_sentence_and_no_output(
    make_args, expected, tiny_model_dir, shipped_clip, tmp_path, capsys
):
    args = make_args(tmp_path, shipped_clip)
    if "-o" not in args:
        args += ["-o", str(tmp_path / "result.mp4")]
    full = [*args[:1], "--size", "64", "--steps", "2", "-p", "x", *args[1:]]
    if "--model" not in full:
        full += ["--model", str(tiny_model_dir)]
    code = main(["edit", *full, "--device", "cpu", "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert expected in err
    assert err.startswith("tokenflow: error: ") and len(err.splitlines()) == 1
    assert not (tmp_path / "result.mp4").exists()


def _text_file(directory: Path) -> Path:
    path = directory / "notes.txt"
    path.write_text("not a video\n")
    return path


def test_interrupted_edit_leaves_no_output(tiny_model_dir, shipped_clip, tmp_path):
    """Ctrl-C once the edit loop is running (seen on the status line, not guessed from the clock)."""
    import pty
    import select

    out = tmp_path / "interrupted.mp4"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # stderr on a terminal, so the status line reports each stage as it starts.
    main_fd, terminal_fd = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "edit", str(shipped_clip), "-p", "x", "--size", "64", "--steps", "50",
         "--frames", "0:7",
         "--model", str(tiny_model_dir), "--device", "cpu", "--cache-dir", str(tmp_path / "c"), "-o", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=terminal_fd, cwd=Path(__file__).resolve().parents[2],
    )
    os.close(terminal_fd)
    seen = b""
    try:
        while b"edit " not in seen:
            ready, _, _ = select.select([main_fd], [], [], 120)
            assert ready and process.poll() is None, f"the edit stage never started: {seen[-500:]!r}"
            seen += os.read(main_fd, 4096)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        while select.select([main_fd], [], [], 0)[0]:
            try:
                seen += os.read(main_fd, 4096)
            except OSError:  # the terminal closes with the process
                break
    finally:
        os.close(main_fd)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, seen.decode(errors="replace")[-500:]
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".mp4",)) or "partial" in p.name]
