"""Bytes the server stores per 1080p frame and per job: raw .npy (before) against lossless PNG (now).

A synthetic 1080p clip is made with PyAV (moving gradients, shapes and sensor-like
grain, H.264 at high quality, so the decoded frames look like camera footage rather
than flat test patterns, which would flatter PNG), decoded back, and every frame is
stored through the server's own Journal twice: as the `.npy` the server wrote before,
and as the PNG it writes now. Per-frame sizes are measured, not modelled; the per-job
figure multiplies by the frame count, and adds the inversion cache entry (fp32 latents
for every sampling step at the working size).

    python benchmarks/bench_storage.py [--frames 24] [--job-frames 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.media import read_frames  # noqa: E402
from server.journal import Blob, BlobCache, Doorbell, Journal  # noqa: E402
from server.paths import DataDir  # noqa: E402
from server.store import JobStore  # noqa: E402

WIDTH, HEIGHT = 1920, 1080


def synthetic_clip(path: Path, frames: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(24000, 1001), options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(frames):
            t = i / 24
            r = 128 + 100 * np.sin(x / 240 + t) * np.cos(y / 310 - t / 2)
            g = 128 + 90 * np.sin((x + y) / 400 + 2 * t)
            b = 110 + 80 * np.cos(np.hypot(x - WIDTH / 2, y - HEIGHT / 2) / 90 - 3 * t)
            image = np.stack([r, g, b], axis=-1)
            cx, cy = int(400 + 300 * np.sin(t)), int(500 + 200 * np.cos(t))
            image[cy - 120:cy + 120, cx - 160:cx + 160] = (220, 60, 40)  # a moving object with hard edges
            image += rng.normal(0, 4, image.shape)  # sensor grain: what makes real footage expensive
            frame = av.VideoFrame.from_ndarray(np.clip(image, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24, help="frames measured (default: %(default)s)")
    parser.add_argument("--job-frames", type=int, default=300, help="frames of the job extrapolated to (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--short-side", type=int, default=512)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = root / "clip_1080p.mp4"
        synthetic_clip(clip, args.frames)
        data = DataDir(root / "data").create()
        store = JobStore(data.database)
        journal = Journal(store, data, BlobCache(max_bytes=0), Doorbell())
        store.create_job("job", {}, priority=0, client_token=None, position=0)
        sizes: dict[str, list[int]] = {"npy": [], "png": []}
        seconds: dict[str, list[float]] = {"npy": [], "png": []}
        for i, image in enumerate(read_frames(clip, 0, args.frames - 1)):
            for ext in ("npy", "png"):
                name = f"frames/{i:08d}.{ext}"
                t0 = time.perf_counter()
                journal.append("job", "frame", {"frame": i}, blob=Blob(name, image), frame=i)
                seconds[ext].append(time.perf_counter() - t0)
                sizes[ext].append(journal.blob_path("job", name).stat().st_size)
            assert np.array_equal(journal.read_blob("job", f"frames/{i:08d}.png"), image)  # lossless
        store.close()

    ww = round(WIDTH * args.short_side / HEIGHT / 64) * 64
    latent = 4 * (args.short_side // 8) * (ww // 8) * 4
    cache = args.job_frames * latent * (args.steps + 1)
    result = {
        "frame": f"{WIDTH}x{HEIGHT}",
        "frames_measured": args.frames,
        "bytes_per_frame": {k: int(statistics.mean(v)) for k, v in sizes.items()},
        "store_ms_per_frame": {k: round(1000 * statistics.mean(v), 1) for k, v in seconds.items()},
        "job_frames": args.job_frames,
        "bytes_per_job_frames": {k: int(statistics.mean(v)) * args.job_frames for k, v in sizes.items()},
        "inversion_cache_bytes_per_job_fp32": cache,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
