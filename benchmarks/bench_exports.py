"""How fast each export preset writes, and how big its files are, at a real frame size.

Writes the same frames (float RGB in [0, 1], as the engine hands them over) through
every preset with `open_writer` and reports frames per second and MB per frame; and
how long `probe --scan` and a range read take on the same clip.

    python benchmarks/bench_exports.py                       # 1920x1080, 24 frames of bigbuckbunny
    python benchmarks/bench_exports.py --clip media/carphone_pristine.mp4 --frames 48
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    from bridge.media import open_writer, probe, read_frames
    from bridge.media.presets import PRESETS

    default_clip = REPO.parent / "shared" / "media" / "bigbuckbunny.mp4"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=default_clip if default_clip.exists() else REPO / "media" / "carphone_pristine.mp4")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="1920x1080", help="WxH the frames are scaled to (nearest neighbour)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))

    info = probe(args.clip)
    count = min(args.frames, info.frame_count)
    started = time.perf_counter()
    scanned = probe(args.clip, scan=True)
    scan_s = time.perf_counter() - started
    started = time.perf_counter()
    source = list(read_frames(args.clip, 0, count - 1))
    read_s = time.perf_counter() - started
    rows = (np.arange(height) * source[0].shape[0] // height)[:, None]
    cols = (np.arange(width) * source[0].shape[1] // width)[None, :]
    frames = [image[rows, cols].astype(np.float32) / 255.0 for image in source]
    sized = type(info)(**{**info.__dict__, "width": width, "height": height})

    print(f"# {args.clip.name}: {count} frames scaled to {width}x{height}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"probe --scan {scan_s * 1000:.0f} ms ({scanned.pictures} pictures); read {count} frames "
          f"{count / read_s:.1f} frames/s at {info.width}x{info.height}")
    print(f"{'preset':<15}{'frames/s':>10}{'MB/frame':>10}")
    with tempfile.TemporaryDirectory() as folder:
        for name, preset in PRESETS.items():
            out = Path(folder) / (f"{name}{preset.extension}" if preset.is_movie else f"{name}/")
            started = time.perf_counter()
            with open_writer(out, sized, 0, preset=name) as writer:
                for image in frames:
                    writer.write(image)
            seconds = time.perf_counter() - started
            size = sum(p.stat().st_size for p in writer.outputs)
            print(f"{name:<15}{count / seconds:>10.1f}{size / count / 1e6:>10.2f}")


if __name__ == "__main__":
    main()
