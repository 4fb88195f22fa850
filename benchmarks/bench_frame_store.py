"""Candidates for the server's stored full-resolution frames, measured on 1080p frames.

    python benchmarks/bench_frame_store.py [--frames 8] [--extra-path DIR] [--json out.json]

Two sources, decoded and scaled to 1920x1080 RGB uint8: real animation
(../shared/media/bigbuckbunny.mp4, 1280x720) and camera-like synthetic footage with
sensor grain (benchmarks/bench_storage.py's clip; grain is what real camera frames
have and what defeats compressors). Each candidate encodes every frame to bytes and
decodes it back: time per frame both ways, bytes against raw, and whether the round trip
is bit-identical. zstandard, lz4 and qoi are not dependencies: they are measured only when
importable (`--extra-path` adds a folder of wheels installed with `pip install --target`).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MEDIA = REPO.parent / "shared" / "media"


def _png_pillow(level: int) -> tuple[Callable, Callable]:
    from PIL import Image

    def encode(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG", compress_level=level)
        return buf.getvalue()

    def decode(b: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(b)) as picture:
            return np.asarray(picture.convert("RGB"))

    return encode, decode


def _png_cv2(level: int) -> tuple[Callable, Callable]:
    import cv2

    def encode(a: np.ndarray) -> bytes:
        return cv2.imencode(".png", a[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, level])[1].tobytes()

    def decode(b: bytes) -> np.ndarray:
        picture = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_UNCHANGED)
        assert picture is not None
        return picture[..., ::-1]

    return encode, decode


def _npy() -> tuple[Callable, Callable]:
    def encode(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        np.save(buf, a, allow_pickle=False)
        return buf.getvalue()

    def decode(b: bytes) -> np.ndarray:
        return np.load(io.BytesIO(b), allow_pickle=False)

    return encode, decode


def _raw(compress: Callable[[bytes], bytes], decompress: Callable[[bytes], bytes]) -> Callable:
    def make(shape: tuple[int, ...]) -> tuple[Callable, Callable]:
        def encode(a: np.ndarray) -> bytes:
            return compress(a.tobytes())

        def decode(b: bytes) -> np.ndarray:
            return np.frombuffer(decompress(b), np.uint8).reshape(shape)

        return encode, decode

    return make


def candidates(shape: tuple[int, ...]) -> dict[str, tuple[Callable, Callable]]:
    found: dict[str, tuple[Callable, Callable]] = {
        "raw .npy": _npy(),
        "PNG level 0 (Pillow)": _png_pillow(0),
        "PNG level 1 (Pillow, today)": _png_pillow(1),
        "PNG level 3 (Pillow)": _png_pillow(3),
        "PNG level 1 (OpenCV)": _png_cv2(1),
        "raw + zlib level 1": _raw(lambda b: zlib.compress(b, 1), zlib.decompress)(shape),
    }
    try:
        import zstandard  # pyright: ignore[reportMissingImports]

        for level in (1, 3):
            c, d = zstandard.ZstdCompressor(level=level, threads=-1), zstandard.ZstdDecompressor()
            found[f"raw + zstd level {level}"] = _raw(c.compress, d.decompress)(shape)
    except ImportError:
        pass
    try:
        import lz4.frame  # pyright: ignore[reportMissingImports]

        found["raw + lz4 frame"] = _raw(lz4.frame.compress, lz4.frame.decompress)(shape)
    except ImportError:
        pass
    try:
        import qoi  # pyright: ignore[reportMissingImports]

        found["QOI"] = (lambda a: qoi.encode(np.ascontiguousarray(a)), qoi.decode)
    except ImportError:
        pass
    return found


def frames_from(path: Path, count: int) -> list[np.ndarray]:
    import av

    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            out.append(frame.reformat(width=1920, height=1080, format="rgb24").to_ndarray())
            if len(out) == count:
                break
    return out


def measure(frames: list[np.ndarray]) -> dict[str, dict]:
    raw = frames[0].nbytes
    results = {}
    for name, (encode, decode) in candidates(frames[0].shape).items():
        enc, dec, sizes, exact = [], [], [], True
        for frame in frames:
            t0 = time.perf_counter()
            data = encode(frame)
            t1 = time.perf_counter()
            back = decode(data)
            t2 = time.perf_counter()
            enc.append(t1 - t0)
            dec.append(t2 - t1)
            sizes.append(len(data))
            exact &= back.dtype == frame.dtype and np.array_equal(back, frame)
        results[name] = {"encode_ms": round(1000 * statistics.median(enc), 1),
                         "decode_ms": round(1000 * statistics.median(dec), 1),
                         "size_pct": round(100 * statistics.mean(sizes) / raw, 1), "lossless": bool(exact)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--extra-path", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.extra_path:
        sys.path.append(str(args.extra_path))  # after the venv: its numpy wins over the folder's
    from benchmarks.bench_storage import synthetic_clip

    out: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        grainy = Path(tmp) / "grain.mp4"
        synthetic_clip(grainy, args.frames)
        sources = {"camera-like with grain": grainy}
        if (MEDIA / "bigbuckbunny.mp4").exists():
            sources["bigbuckbunny (animation)"] = MEDIA / "bigbuckbunny.mp4"
        for label, path in sources.items():
            out[label] = measure(frames_from(path, args.frames))
            print(f"\n{label} ({args.frames} frames, 1920x1080)")
            for name, r in out[label].items():
                print(f"  {name:28s} encode {r['encode_ms']:7.1f} ms  decode {r['decode_ms']:6.1f} ms  "
                      f"size {r['size_pct']:5.1f}%  lossless {r['lossless']}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
