"""Preview decode: TAESD (diffusers AutoencoderTiny) against the full SD VAE decoder, at 512 px.

Both at their real configurations with random weights (speed does not depend on the
weights): SD 2.1-base's VAE (tokenflow/tiny.py's SD shape) and TAESD's defaults
(tokenflow/preview_decoder.py). One run, side by side, the same latents (64x64 = 512 px).

    python benchmarks/bench_preview_decode.py [--frames 4] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(decode, latents: torch.Tensor, repeats: int, device: torch.device) -> float:
    """Best of `repeats`, seconds per frame (after one warm-up call)."""
    decode(latents[:1])
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        decode(latents)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best / latents.shape[0]


@torch.no_grad()
def main() -> int:
    from diffusers import AutoencoderTiny  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API

    from tokenflow.tiny import _sd_vae

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    vae = _sd_vae((128, 256, 512, 512), layers_per_block=2, norm_num_groups=32, sample_size=512).to(device).eval()
    taesd = AutoencoderTiny().to(device=device, dtype=dtype).eval()  # pyright: ignore[reportCallIssue,reportArgumentType]
    latents = torch.randn(args.frames, 4, args.size // 8, args.size // 8, device=device)
    full = timed(lambda z: vae.decode(z.float()).sample, latents, args.repeats, device)  # the VAE runs fp32 (model.py)
    tiny = timed(lambda z: taesd.decode(z.to(dtype)).sample, latents, args.repeats, device)
    result = {"device": str(device), "size": args.size, "frames": args.frames,
              "full_vae_s_per_frame": round(full, 4), "taesd_s_per_frame": round(tiny, 4),
              "taesd_over_full": round(tiny / full, 4), "speedup": round(full / tiny, 1)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
