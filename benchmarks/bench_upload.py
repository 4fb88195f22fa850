"""Uploading frames (docs/protocol.md, "Jobs whose source is uploaded frames"): throughput by
sample type and messages in flight, against writing the same bytes to a local file.

    python benchmarks/bench_upload.py [--frames 24] [--json FILE]

A `tokenflow serve` process (the pass-through engine: no model is loaded) takes full-HD
RGBA uploads from `Client.upload` over its default ipc:// socket: uint8 (8.3 MB a
frame, one message each) and float32 (33 MB a frame, three parts). Each upload is a new
id, so every byte goes through the front: CRC-32 and SHA-256 of every part, and a write
into the data folder. The figures to compare with: a plain local write of the same
bytes, and CRC-32 + SHA-256 alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_server import Serve  # noqa: E402
from bridge.wire import protocol as p  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results: dict = {"frames": args.frames, "upload": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        serve = Serve(root / "srv", "none", "cpu", ["--engine-factory", "benchmarks.bench_server:passthrough_factory"])
        try:
            c = serve.client()
            for dtype in ("uint8", "float32"):
                if dtype == "uint8":
                    frame = rng.integers(0, 256, (1080, 1920, 4), dtype=np.uint8)
                else:
                    frame = rng.random((1080, 1920, 4), dtype=np.float32)
                total = frame.nbytes * args.frames
                t0 = time.perf_counter()
                with open(root / "local.raw", "wb") as f:
                    for _ in range(args.frames):
                        f.write(frame.data)
                local_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                for _ in range(args.frames):
                    zlib.crc32(frame.data)
                    hashlib.sha256(frame.data).digest()
                check_s = time.perf_counter() - t0
                row = {"frame_bytes": frame.nbytes, "local_write_MBps": total / local_s / 1e6,
                       "crc32_sha256_MBps": total / check_s / 1e6}
                for window in (1, 4):
                    upload = secrets.token_hex(8)
                    t0 = time.perf_counter()
                    c.upload_open(upload, width=1920, height=1080, channels=4, dtype=dtype, frame_rate="24", first=0,
                                  count=args.frames)
                    state = c.upload_frames(upload, lambda n, pixels=frame: pixels, range(args.frames),
                                            max_in_flight=window)
                    took = time.perf_counter() - t0
                    assert state is not None and state.complete
                    c.request(p.UploadDelete(upload=upload))
                    row[f"upload_{window}_in_flight_MBps"] = total / took / 1e6
                results["upload"][dtype] = row
            c.close()
        finally:
            serve.stop()
    for dtype, row in results["upload"].items():
        print(f"{dtype} RGBA 1920x1080 ({row['frame_bytes'] / 1e6:.1f} MB a frame, {args.frames} frames): "
              f"upload {row['upload_1_in_flight_MBps']:.0f} MB/s (1 in flight), "
              f"{row['upload_4_in_flight_MBps']:.0f} MB/s (4 in flight); local write "
              f"{row['local_write_MBps']:.0f} MB/s; CRC-32 + SHA-256 alone {row['crc32_sha256_MBps']:.0f} MB/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
