"""The inversion cache in float16: what it costs in accuracy, measured on the tiny model (CPU).

    python benchmarks/bench_cache_dtype.py [--frames 8] [--steps 4]

1. A float32 UNet (CPU) fed a cache entry with every latent in float16 (what a blanket
   float16 cache would do): the edit's error against the cold float32 job.
2. A float16 UNet (as on a GPU) with the cache's layout (`tokenflow.cache.compact`:
   x_t at the first step in float32, the rest in float16): the warm job against the
   cold one, which must be bit-identical, and the entry's size against float32.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.make_params import make_params  # noqa: E402
from tokenflow.engine import Engine  # noqa: E402
from tokenflow.events import FrameReady  # noqa: E402
from tokenflow.tiny import make_tiny_pipeline_dir  # noqa: E402


def run(engine: Engine, frames: list[np.ndarray], params) -> np.ndarray:
    out: list[np.ndarray] = []
    engine.edit(iter(frames), len(frames), params,
                on_event=lambda e: out.append(e.best_image) if isinstance(e, FrameReady) else None)
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    from bridge.media import read_frames

    frames = list(read_frames(REPO / "media" / "carphone_pristine.mp4", 0, args.frames - 1))
    params = make_params(prompt="a watercolour painting", steps=args.steps, short_side=64, batch_size=4)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = make_tiny_pipeline_dir(Path(tmp) / "tiny")
        cache = Path(tmp) / "cache"

        engine = Engine(str(model_dir), device="cpu", cache_dir=cache)
        cold = run(engine, frames, params)
        (entry,) = cache.glob("inversion-*.safetensors")
        from safetensors.torch import load_file, save_file

        tensors = load_file(str(entry))
        save_file({k: v.half() for k, v in tensors.items()}, str(entry))  # every latent in float16
        warm = run(engine, frames, params)
        diff = np.abs(cold.astype(np.int16) - warm.astype(np.int16))
        print(f"float32 UNet, all-float16 entry: output max |diff| {diff.max()} levels of 255, "
              f"mean {diff.mean():.4f}, {100 * (diff > 0).mean():.2f}% of values differ")

        for path in cache.glob("*"):
            path.unlink()
        model = engine.model
        engine.model = dataclasses.replace(model, unet=model.unet.to(torch.float16), unet_dtype=torch.float16,
                                           text_encoder=model.text_encoder.to(torch.float16))
        engine._prompts.clear()  # prompts encoded again, in float16 as on a GPU
        cold16 = run(engine, frames, params)
        (entry,) = cache.glob("inversion-*.safetensors")
        size16 = entry.stat().st_size
        size32 = sum(v.numel() * 4 for v in load_file(str(entry)).values())
        warm16 = run(engine, frames, params)
        print(f"float16 UNet, cache layout (first step float32, rest float16): warm == cold bit for bit: "
              f"{np.array_equal(cold16, warm16)}; entry {size16} bytes vs {size32} in float32 "
              f"({100 * size16 / size32:.0f}%)")


if __name__ == "__main__":
    main()
